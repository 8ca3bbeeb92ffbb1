// loupe Insights' page script (served at /page.js: the Content-Security-Policy
// allows no inline script). The view (filters, method and its arguments,
// page) lives in the address bar's query, so that a reload or a shared
// link shows the same; attributions are asked for only when a card comes
// into view, and a failing request's error is shown once. With detectors
// (info.detector), each model's part of a card shows the image with the
// boxes it found; selecting a box (on the image or in the list) asks for
// that box's explanation (box=).
"use strict";
const $ = id => document.getElementById(id);
let info = null;      // /api/summary
let methods = [];     // /api/methods
let offset = 0, total = 0;
const limit = 12;
// A generation is one set of controls: changing them aborts the requests
// of the last one and forgets its error.
let gen = null;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function option(sel, value, text) {
  const o = el("option", "", text);
  o.value = value;
  sel.append(o);
}

function currentMethod() { return methods.find(m => m.name === $("method").value); }

function showParams(values) {
  const m = currentMethod(), box = $("params");
  box.textContent = "";
  if (!m) return;
  $("doc").textContent = m.doc;
  $("layerbox").hidden = !m.layer;
  $("targetbox").hidden = info.detector;
  for (const p of m.params || []) {
    const l = el("label");
    l.title = p.doc;
    l.append(p.name + " ");
    const i = el("input");
    i.type = "text"; i.dataset.name = p.name; i.dataset.default = p.default;
    i.value = values && values.has(p.name) ? values.get(p.name) : p.default;
    l.append(i);
    box.append(l);
  }
}

// controls returns the view as query parameters: the filter, the
// attribution's settings (parameters only where they differ from the
// method's defaults) and the page.
function controls() {
  const q = new URLSearchParams();
  for (const id of ["class", "correct", "model", "target"]) if ($(id).value !== "") q.set(id, $(id).value);
  q.set("method", $("method").value);
  q.set("sign", $("sign").value);
  q.set("view", $("view").value);
  if (info.detector && $("iou").checked) q.set("iou", "true");
  for (const inp of $("params").querySelectorAll("input"))
    if (inp.value !== inp.dataset.default) q.append("param", inp.dataset.name + "=" + inp.value);
  return q;
}

// layerInputs are the layer fields, one per model, in order.
function layerInputs() { return [...$("layerbox").querySelectorAll("input")]; }

function saveView() {
  const q = controls();
  const ls = layerInputs().map(i => i.value);
  if (ls.some(v => v !== "")) for (const v of ls) q.append("layer", v);
  if (offset > 0) q.set("offset", offset);
  history.replaceState(null, "", "?" + q.toString());
}

function restoreView() {
  const q = new URLSearchParams(location.search);
  layerInputs().forEach((inp, k) => { const ls = q.getAll("layer"); if (k < ls.length) inp.value = ls[k]; });
  $("iou").checked = q.get("iou") === "true";
  for (const id of ["class", "correct", "model", "target", "method", "sign", "view"]) {
    if (!q.has(id)) continue;
    const e = $(id);
    if (e.tagName === "SELECT" && ![...e.options].some(o => o.value === q.get(id))) continue;
    e.value = q.get(id);
  }
  const vals = new Map();
  for (const p of q.getAll("param")) {
    const k = p.indexOf("=");
    if (k > 0) vals.set(p.slice(0, k), p.slice(k + 1));
  }
  showParams(vals);
  offset = Math.max(0, parseInt(q.get("offset") || "0", 10) || 0);
}

function shownModels() {
  const m = $("model").value;
  return m === "" ? info.models.map((_, i) => i) : [parseInt(m, 10)];
}

function showError(msg) {
  if (gen.error) return; // once per generation
  gen.error = msg;
  $("error").textContent = msg;
  $("error").hidden = false;
}

// tokenColor is Captum's visualize_text color for a share in [-1, 1].
function tokenColor(a) {
  a = Math.max(-1, Math.min(1, a));
  return a >= 0 ? `hsl(120, 75%, ${100 - Math.trunc(50 * a)}%)` : `hsl(0, 75%, ${100 - Math.trunc(-40 * a)}%)`;
}

function bar(score, scale) {
  const b = el("div", "bar"), f = el("div", score >= 0 ? "pos" : "neg");
  const w = scale > 0 ? 50 * Math.abs(score) / scale : 0;
  f.style.width = w + "%";
  f.style.left = (score >= 0 ? 50 : 50 - w) + "%";
  b.append(f);
  return b;
}

function fmt(v) { return Math.abs(v) >= 1e-3 || v === 0 ? v.toFixed(3) : v.toExponential(2); }

function drawPart(p) {
  const d = el("div", "part " + p.modality);
  d.dataset.modality = p.modality;
  d.append(el("h4", "", p.name + " (" + p.modality + "), net contribution " + fmt(p.total)));
  if (p.image) {
    const img = new Image();
    img.src = p.image;
    img.alt = p.name;
    d.append(img);
  } else if (p.tokens) {
    const t = el("div", "tokens");
    const m = Math.max(...p.tokens.map(s => Math.abs(s.score)), 0);
    for (const s of p.tokens) {
      const k = el("mark", "", s.name);
      k.style.backgroundColor = tokenColor(m > 0 ? s.score / m : 0);
      k.title = fmt(s.score);
      t.append(k, " ");
    }
    d.append(t);
  } else if (p.features) {
    const g = el("div", "bars");
    const m = Math.max(...p.features.map(s => Math.abs(s.score)), 0);
    for (const s of p.features) {
      g.append(el("span", "", s.name + " = " + fmt(s.value)), bar(s.score, m), el("span", "", fmt(s.score)));
    }
    d.append(g);
    if (p.omitted) d.append(el("div", "net", p.omitted + " smaller features not shown"));
  }
  return d;
}

// drawNet draws each part's net contribution as a bar, as Captum
// Insights does.
function drawNet(parts) {
  const g = el("div", "bars net");
  const m = Math.max(...parts.map(p => Math.abs(p.total)), 0);
  for (const p of parts) g.append(el("span", "", p.name), bar(p.total, m), el("span", "", fmt(p.total)));
  return g;
}

async function loadModel(g, mbox, i, mi) {
  const box = mbox.querySelector(".expl") || mbox;
  if (g.failed) { box.append(el("div", "err", "not drawn: see the error above")); return; }
  const q = controls();
  q.delete("class"); q.delete("correct"); q.delete("model");
  q.set("i", i); q.set("model", mi);
  const m = currentMethod(), layer = layerInputs()[mi];
  if (m && m.layer && layer && layer.value) q.set("layer", layer.value);
  if (info.detector) {
    if (mbox.dataset.box === undefined) return; // no box to explain
    q.delete("target");
    q.set("box", mbox.dataset.box);
  }
  const seq = mbox.dataset.seq; // a detector's box selection
  const wait = el("div", "pending", "computing…");
  box.append(wait);
  let r;
  try {
    r = await fetch("api/explain?" + q.toString(), {signal: g.abort.signal});
  } catch (e) {
    if (g === gen) { wait.textContent = "failed"; showError(String(e)); }
    return;
  }
  if (g !== gen || mbox.dataset.seq !== seq) return;
  if (!r.ok) {
    const msg = await r.text();
    wait.className = "err";
    wait.textContent = "not drawn: see the error above";
    showError($("method").value + ": " + msg.trim());
    if (r.status === 400) g.failed = true; // the same request fails everywhere
    return;
  }
  const e = await r.json();
  if (mbox.dataset.seq !== seq) return;
  wait.remove();
  box.append(el("div", "net", e.method + ", target " + (e.box ? "box " + e.box.index + ": " + e.box.label + " " + e.box.score.toFixed(2) : e.target)));
  if (e.parts.length > 1) box.append(drawNet(e.parts));
  for (const p of e.parts) box.append(drawPart(p));
  g.done++;
  $("status").textContent = g.done + " drawn";
}

function card(row, g) {
  const c = el("div", "card");
  c.dataset.index = row.index;
  const head = el("div");
  head.append(el("b", "", row.id));
  if (row.label >= 0) head.append(" true: " + row.label_name);
  c.append(head);
  const pics = el("div", "pics");
  info.inputs.forEach((inp, k) => {
    if (inp.modality !== "image" || info.detector) return;
    const pic = new Image();
    pic.src = "api/picture?i=" + row.index + "&input=" + k;
    pic.alt = row.id + " " + inp.name;
    pics.append(pic);
  });
  c.append(pics);
  for (const mi of shownModels()) {
    const p = row.predictions[mi];
    const box = el("div", "model");
    box.dataset.model = mi;
    const h = el("h3", "", p.model + ": " + p.predicted_name + " (" + p.probability.toFixed(2) + ") ");
    if (p.correct !== null) h.append(el("span", p.correct ? "right" : "wrong", p.correct ? "right" : "wrong"));
    box.append(h);
    if (info.detector) detections(g, c, box, row, p);
    c.append(box);
  }
  c.load = () => {
    c.loaded = true;
    for (const box of c.querySelectorAll(".model")) loadModel(g, box, row.index, parseInt(box.dataset.model, 10));
  };
  return c;
}

// detections draws a detector's boxes over the example's picture, and
// their list; selecting one (the first to begin with) explains it.
function detections(g, c, box, row, p) {
  const pic = el("div", "det"), list = el("div", "boxlist");
  const img = new Image();
  img.src = "api/picture?i=" + row.index + "&input=0";
  img.alt = row.id;
  pic.append(img);
  const select = k => {
    box.dataset.box = k;
    box.dataset.seq = (parseInt(box.dataset.seq || "0", 10) + 1).toString();
    for (const e of box.querySelectorAll("[data-box]")) e.classList.toggle("sel", e.dataset.box === String(k));
    const ex = box.querySelector(".expl");
    ex.textContent = "";
    if (c.loaded) loadModel(g, box, row.index, parseInt(box.dataset.model, 10));
  };
  for (const b of p.boxes || []) {
    const d = el("div", "box");
    d.dataset.box = b.index;
    d.title = b.index + ": " + b.label + " " + b.score.toFixed(2);
    d.style.left = (100 * b.rel[0]) + "%";
    d.style.top = (100 * b.rel[1]) + "%";
    d.style.width = (100 * (b.rel[2] - b.rel[0])) + "%";
    d.style.height = (100 * (b.rel[3] - b.rel[1])) + "%";
    d.append(el("span", "", String(b.index)));
    d.onclick = () => select(b.index);
    pic.append(d);
    const btn = el("button", "", b.index + ": " + b.label + " " + b.score.toFixed(2));
    btn.dataset.box = b.index;
    btn.onclick = () => select(b.index);
    list.append(btn);
  }
  if (!p.boxes || p.boxes.length === 0) list.append(el("span", "net", "no box found"));
  box.append(pic, list, el("div", "expl"));
  if (p.boxes && p.boxes.length > 0) select(0);
}

async function show() {
  if (gen) { gen.abort.abort(); gen.observer.disconnect(); }
  const g = gen = {abort: new AbortController(), error: null, failed: false, done: 0};
  g.observer = new IntersectionObserver(entries => {
    for (const en of entries) {
      if (!en.isIntersecting) continue;
      g.observer.unobserve(en.target);
      en.target.load();
    }
  }, {rootMargin: "200px"});
  $("error").hidden = true;
  $("error").textContent = "";
  saveView();
  const q = new URLSearchParams();
  for (const id of ["class", "correct", "model"]) if ($(id).value !== "") q.set(id, $(id).value);
  q.set("offset", offset); q.set("limit", limit);
  const grid = $("grid");
  grid.textContent = "";
  let r;
  try {
    r = await fetch("api/examples?" + q.toString(), {signal: g.abort.signal});
  } catch (e) { return; }
  if (g !== gen) return;
  if (!r.ok) { showError(await r.text()); return; }
  const page = await r.json();
  total = page.total;
  if (offset >= total && total > 0) { offset = Math.floor((total - 1) / limit) * limit; return show(); }
  $("pageinfo").textContent = total === 0 ? "no examples" : `examples ${offset + 1}–${offset + page.examples.length} of ${total}`;
  $("prev").disabled = offset === 0;
  $("next").disabled = offset + limit >= total;
  $("status").textContent = "";
  for (const row of page.examples) {
    const c = card(row, g);
    grid.append(c);
    g.observer.observe(c);
  }
}

function summary() {
  const s = info;
  let t = s.examples + " examples";
  if (s.labelled) t += "; right of " + s.labelled + " labelled: " + s.models.map(m => m.name + " " + m.right).join(", ");
  t += ". Classes (examples): " + s.classes.map(c => c.name + " (" + c.examples + ")").join(", ");
  $("summary").textContent = t;
}

(async () => {
  const [ri, rm] = await Promise.all([fetch("api/summary"), fetch("api/methods")]);
  if (!ri.ok || !rm.ok) { $("error").hidden = false; $("error").textContent = await (ri.ok ? rm : ri).text(); return; }
  info = await ri.json();
  methods = await rm.json();
  summary();
  for (const c of info.classes) {
    option($("class"), c.index, c.name + " (" + c.examples + ")");
    option($("target"), c.index, c.name);
  }
  info.models.forEach((m, i) => option($("model"), i, m.name));
  info.models.forEach((m, i) => {
    const l = el("label", "", "layer" + (info.models.length > 1 ? " (" + m.name + ")" : "") + " ");
    const inp = el("input");
    inp.type = "text";
    inp.placeholder = m.layer || "last conv";
    l.append(inp);
    $("layerbox").append(l);
  });
  if (info.detector) { $("correctbox").hidden = true; $("targetbox").hidden = true; $("ioubox").hidden = false; }
  if (info.models.length < 2) $("model").parentElement.hidden = true;
  for (const m of methods) option($("method"), m.name, m.name);
  $("method").value = info.method;
  for (const s of info.signs) option($("sign"), s, s);
  $("sign").value = "absolute_value";
  for (const v of info.views) option($("view"), v, v);
  $("view").value = "blended_heat_map";
  restoreView();
  $("method").onchange = () => { showParams(); show(); };
  for (const id of ["sign", "view", "target", "iou"]) $(id).onchange = show;
  $("apply").onclick = show;
  for (const id of ["class", "correct", "model"]) $(id).onchange = () => { offset = 0; show(); };
  $("prev").onclick = () => { offset = Math.max(0, offset - limit); show(); };
  $("next").onclick = () => { offset += limit; show(); };
  show();
})();
