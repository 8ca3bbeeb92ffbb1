// loupe Insights' page script (served at /page.js: the Content-Security-Policy
// allows no inline script).
"use strict";
const $ = id => document.getElementById(id);
let methods = [];

function currentMethod() { return methods.find(m => m.name === $("method").value); }

function showParams() {
  const m = currentMethod(), box = $("params");
  box.textContent = "";
  if (!m) return;
  $("doc").textContent = m.doc;
  $("layerbox").style.display = m.layer ? "" : "none";
  for (const p of m.params || []) {
    const l = document.createElement("label");
    l.title = p.doc;
    l.append(p.name + " ");
    const i = document.createElement("input");
    i.type = "text"; i.value = p.default; i.dataset.name = p.name;
    l.append(i);
    box.append(l);
  }
}

function attributionURL(i) {
  const q = new URLSearchParams({i: i, method: $("method").value, sign: $("sign").value, view: $("view").value});
  if ($("target").value !== "") q.set("target", $("target").value);
  const m = currentMethod();
  if (m && m.layer && $("layer").value) q.set("layer", $("layer").value);
  for (const inp of $("params").querySelectorAll("input")) q.append("param", inp.dataset.name + "=" + inp.value);
  return "api/attribution?" + q.toString();
}

async function show() {
  const q = new URLSearchParams();
  if ($("class").value !== "") q.set("class", $("class").value);
  if ($("correct").value !== "") q.set("correct", $("correct").value);
  const grid = $("grid");
  grid.textContent = "";
  const r = await fetch("api/examples?" + q.toString());
  if (!r.ok) { $("status").textContent = await r.text(); return; }
  const preds = await r.json() || [];
  $("status").textContent = preds.length + " examples";
  for (const p of preds) {
    const card = document.createElement("div");
    card.className = "card";
    const verdict = p.correct === null ? "" : (p.correct ? '<span class="right">right</span>' : '<span class="wrong">wrong</span>');
    const info = document.createElement("div");
    info.innerHTML = "<b></b> " + verdict + "<br>";
    info.querySelector("b").textContent = p.id;
    info.append((p.label >= 0 ? "true: " + p.label_name + "; " : "") + "predicted: " + p.predicted_name + " (" + p.probability.toFixed(2) + ")");
    card.append(info);
    const pic = new Image();
    pic.src = "api/picture?i=" + p.index;
    pic.alt = p.id;
    pic.onerror = () => pic.remove();
    const at = new Image();
    at.alt = "attributions of " + p.id;
    at.src = attributionURL(p.index);
    at.width = 360;
    at.onerror = async () => {
      const e = document.createElement("div");
      e.className = "err";
      const resp = await fetch(at.src);
      e.textContent = await resp.text();
      at.replaceWith(e);
    };
    card.append(pic, at);
    grid.append(card);
  }
}

(async () => {
  methods = await (await fetch("api/methods")).json();
  for (const m of methods) {
    const o = document.createElement("option");
    o.textContent = m.name;
    if (m.name === "IntegratedGradients") o.selected = true;
    $("method").append(o);
  }
  showParams();
  $("method").onchange = showParams;
  $("apply").onclick = show;
  $("class").onchange = show;
  $("correct").onchange = show;
  show();
})();
