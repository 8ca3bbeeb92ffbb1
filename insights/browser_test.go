package insights

// The page in a real browser: headless Chromium driven through the
// DevTools protocol (chromedp). Skipped when no Chromium is installed;
// CI installs Debian's (.ci/run).

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/internal/demo"
	"github.com/loupe-ml/loupe/internal/explain"
	"github.com/loupe-ml/loupe/tensor"
)

// chromium returns the path of a Chromium or Chrome, or "".
func chromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// seen records what the server answered: the attribution requests and
// the answers to requests sent by another site's page.
type seen struct {
	mu       sync.Mutex
	explains []string // queries of /api/explain
	foreign  []string // "path status" of requests with a Sec-Fetch-Site other than same-origin or none
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func (sn *seen) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/explain" {
			sn.mu.Lock()
			sn.explains = append(sn.explains, r.URL.RawQuery)
			sn.mu.Unlock()
		}
		sw := &statusWriter{w, 200}
		h.ServeHTTP(sw, r)
		sn.mu.Lock()
		defer sn.mu.Unlock()
		if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
			sn.foreign = append(sn.foreign, fmt.Sprintf("%s %s %d", s, r.URL.Path, sw.code))
		}
	})
}

func (sn *seen) counts() (int, []string) {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	return len(sn.explains), append([]string(nil), sn.foreign...)
}

func TestPageInBrowser(t *testing.T) {
	exe := chromium()
	if exe == "" {
		t.Skip("no Chromium found (chromium, chromium-browser, google-chrome): apt-get install chromium")
	}
	if testing.Short() {
		t.Skip("starts a browser")
	}
	// 15 demo images, two models: the demo model and one that always says
	// disc.
	var exs []Example
	for i := 0; i < 15; i++ {
		img, _ := demo.Draw(i%3, uint64(700+i))
		x, _ := img.Reshape(1, 3, demo.Size, demo.Size)
		exs = append(exs, Example{ID: fmt.Sprintf("%s-%d", demo.Classes[i%3], i), Inputs: []*tensor.Tensor{x}, Label: i % 3})
	}
	s, err := NewModels(context.Background(), []Model{{Name: "demo", Net: demoNet(t)}, {Name: "disc", Net: discNet(t)}}, exs, Options{Classes: demo.Classes})
	if err != nil {
		t.Fatal(err)
	}
	var runs sync.Map // method -> count
	s.run = func(ctx context.Context, nt *attr.Net, in []*tensor.Tensor, r explain.Request) (*explain.Result, error) {
		runs.Store(r.Method, true)
		return explain.Run(ctx, nt, in, r)
	}
	h, err := s.Handler(Config{Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	var sn seen
	web := httptest.NewServer(sn.wrap(h))
	defer web.Close()
	// Another site's page (another origin: another port) that tries to
	// read the API with the browser's cookie, and to start an attribution.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><title>evil</title><script>
window.result = "pending";
fetch(%[1]q + "/api/summary", {credentials: "include"}).then(r => r.text()).then(t => { window.result = "read: " + t; }, e => { window.result = "blocked: " + e; });
const i = new Image(); i.src = %[1]q + "/api/attribution?i=0&method=IntegratedGradients";
</script>`, web.URL)
	}))
	defer evil.Close()

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.Flag("disable-gpu", true), chromedp.WindowSize(1000, 700))...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	stop := time.AfterFunc(45*time.Second, cancelAlloc) // never hang CI
	defer stop.Stop()

	do := func(what string, a ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, a...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// wait waits until a JavaScript expression is true.
	wait := func(what, expr string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(15*time.Second))); err != nil {
			page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText.slice(0, 1500)`))
			t.Fatalf("%s: %v (waiting for %s)\npage:\n%s", what, err, expr, page)
		}
	}
	eval := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		return v
	}
	// choose sets a control as a user would and tells the page.
	choose := func(id, value string) {
		t.Helper()
		do("choose "+id, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const e = document.getElementById(%q); e.value = %q; e.dispatchEvent(new Event("change")); })()`, id, value)))
	}
	const picturesShown = `(() => { const im = [...document.querySelectorAll(".part img")]; return im.length > 0 && im.every(i => i.complete && i.naturalWidth > 100); })()`

	start := time.Now()
	do("open the page", chromedp.Navigate(web.URL+"/?token="+testToken))
	wait("first page", `document.querySelectorAll(".card").length === 12`)
	wait("pictures", picturesShown)
	t.Logf("first pictures after %v", time.Since(start).Round(time.Millisecond))
	if loc := eval(`location.href`); strings.Contains(loc, "token") || !strings.Contains(loc, "method=Saliency") {
		t.Errorf("address %s: want the token gone and the view (method=Saliency) in the query", loc)
	}
	if got := eval(`document.getElementById("pageinfo").textContent`); got != "examples 1–12 of 15" {
		t.Errorf("page info %q", got)
	}
	// Lazy: only the cards in view (and a margin) are explained, each by
	// both models.
	time.Sleep(300 * time.Millisecond)
	if n := eval(`String([...document.querySelectorAll(".model")].filter(m => m.children.length > 1).length)`); n == "0" || n == "24" {
		t.Errorf("%s explanations begun before scrolling, want some but not all 24", n)
	}
	do("scroll", chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, document.body.scrollHeight)`))
	wait("the last card's pictures", `(() => { const c = [...document.querySelectorAll(".card")].pop(); return c.querySelectorAll(".part img").length === 2; })()`)
	// Classes listed: the three that occur, not more.
	if got := eval(`[...document.getElementById("class").options].map(o => o.textContent).join(",")`); got != "any,square (5),disc (5),triangle (5)" {
		t.Errorf("class list %q", got)
	}

	// Filter: wrong by some model.
	wrong, _ := s.Examples(Filter{Class: -1, Model: -1, Correct: "wrong"})
	choose("correct", "wrong")
	wait("the wrong ones", fmt.Sprintf(`document.querySelectorAll(".card").length === %d && document.getElementById("pageinfo").textContent.endsWith("of %d")`, min(len(wrong), 12), len(wrong)))
	// Model: the disc model alone.
	choose("model", "1")
	wait("one model", `(() => { const c = [...document.querySelectorAll(".card")]; return c.length > 0 && c.every(x => x.querySelectorAll(".model").length === 1 && x.querySelector(".model h3").textContent.startsWith("disc")); })()`)
	wait("its pictures", picturesShown)
	// Method: InputXGradient.
	before, _ := sn.counts()
	choose("method", "InputXGradient")
	wait("pictures by InputXGradient", picturesShown+` && [...document.querySelectorAll(".model .net")].some(n => n.textContent.startsWith("InputXGradient, target disc"))`)
	sn.mu.Lock()
	for _, q := range sn.explains[before:] {
		if !strings.Contains(q, "model=1") {
			t.Errorf("after choosing the disc model: asked %s", q)
		}
	}
	sn.mu.Unlock()
	if loc := eval(`location.search`); !strings.Contains(loc, "correct=wrong") || !strings.Contains(loc, "model=1") || !strings.Contains(loc, "method=InputXGradient") {
		t.Errorf("the view is not in the address: %s", loc)
	}

	// An error (n_steps out of its bounds) is shown once, above the cards.
	choose("method", "IntegratedGradients")
	do("n_steps=0", chromedp.Evaluate[chromedp.Void](`(() => { document.querySelector('#params input[data-name="n_steps"]').value = "0"; document.getElementById("apply").click(); })()`))
	wait("the error", `!document.getElementById("error").hidden && document.getElementById("error").textContent.includes("n_steps")`)
	if got := eval(`String(document.getElementById("error").textContent.split("n_steps").length - 1) + " " + String([...document.querySelectorAll(".card")].filter(c => c.textContent.includes("n_steps")).length)`); got != "1 0" {
		t.Errorf("the error about n_steps shown (above the cards, in cards): %s times, want once above them", got)
	}

	// The view survives a reload from the address bar (the cookie holds
	// the token).
	loc := eval(`location.href`)
	do("reload", chromedp.Navigate(loc))
	wait("restored", `document.getElementById("method").value === "IntegratedGradients" && document.getElementById("model").value === "1" && document.getElementById("correct").value === "wrong" && document.querySelector('#params input[data-name="n_steps"]').value === "0"`)

	// One layer field per model: each model's requests carry its own
	// layer, and the layers are in the address in model order.
	if got := eval(`String(document.querySelectorAll("#layerbox input").length)`); got != "2" {
		t.Errorf("%s layer fields for two models", got)
	}
	before, _ = sn.counts()
	do("layers", chromedp.Evaluate[chromedp.Void](`(() => { const l = document.querySelectorAll("#layerbox input"); l[0].value = "conv3"; l[1].value = "conv2"; })()`))
	choose("method", "LayerGradCam")
	wait("pictures by LayerGradCam", picturesShown+` && [...document.querySelectorAll(".model .net")].some(n => n.textContent.startsWith("LayerGradCam"))`)
	sn.mu.Lock()
	asked := 0
	for _, q := range sn.explains[before:] {
		if !strings.Contains(q, "method=LayerGradCam") {
			continue // the reloaded page's own requests
		}
		asked++
		if !strings.Contains(q, "model=1") || !strings.Contains(q, "layer=conv2") {
			t.Errorf("the disc model's LayerGradCam: asked %s, want layer=conv2", q)
		}
	}
	sn.mu.Unlock()
	if asked == 0 {
		t.Error("no LayerGradCam request seen")
	}
	if loc := eval(`location.search`); !strings.Contains(loc, "layer=conv3&layer=conv2") {
		t.Errorf("the layers are not in the address: %s", loc)
	}

	// Another origin's page cannot read the API nor start an attribution,
	// though the browser holds the cookie.
	runs.Delete("IntegratedGradients")
	do("the other site", chromedp.Navigate(evil.URL))
	wait("its fetch", `window.result !== "pending"`)
	if got := eval(`window.result`); !strings.HasPrefix(got, "blocked") {
		t.Errorf("another origin's page read the API: %.200s", got)
	}
	time.Sleep(200 * time.Millisecond) // the <img> request
	_, foreign := sn.counts()
	if len(foreign) < 2 {
		t.Errorf("requests from the other site seen: %v, want its fetch and its picture", foreign)
	}
	for _, f := range foreign {
		if !strings.HasSuffix(f, " 403") {
			t.Errorf("a request from the other site answered %s", f)
		}
	}
	if _, ok := runs.Load("IntegratedGradients"); ok {
		t.Error("the other site's page started an attribution")
	}
	t.Logf("browser test took %v", time.Since(start).Round(time.Millisecond))
}
