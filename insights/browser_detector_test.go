package insights

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/loupe-ml/loupe/internal/demo"
)

// The detector page in headless Chromium: every card shows the image with
// its boxes; the best box is explained first; selecting another box (in
// the list, or on the image) shows that box's explanation, asked for with
// box=.
func TestDetectorInBrowser(t *testing.T) {
	exe := chromium()
	if exe == "" {
		t.Skip("no Chromium found (chromium, chromium-browser, google-chrome): apt-get install chromium")
	}
	if testing.Short() {
		t.Skip("starts a browser")
	}
	d := demoDetector(t)
	s, err := NewModels(context.Background(), []Model{{Name: "det", Detector: d, Layer: demo.DetectionLayer}}, sceneExamples(6), Options{Classes: d.Config.Classes})
	if err != nil {
		t.Fatal(err)
	}
	two := -1
	for i, r := range s.rows {
		if len(r.Predictions[0].Boxes) >= 2 {
			two = i
			break
		}
	}
	if two < 0 {
		t.Fatal("no scene with two boxes")
	}
	h, err := s.Handler(Config{Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	var sn seen
	web := httptest.NewServer(sn.wrap(h))
	defer web.Close()

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.Flag("disable-gpu", true), chromedp.WindowSize(1000, 2000))...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	stop := time.AfterFunc(45*time.Second, cancelAlloc)
	defer stop.Stop()
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
	click := func(sel string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%q).click()`, sel))); err != nil {
			t.Fatalf("click %s: %v", sel, err)
		}
	}
	card := fmt.Sprintf(`.card[data-index="%d"]`, two)
	// shows says the card explains box k with a drawn picture.
	shows := func(method string, k int) string {
		return fmt.Sprintf(`(() => { const c = document.querySelector(%q); if (!c) return false;
  const n = c.querySelector(".expl .net"), im = c.querySelector(".expl .part img");
  return n !== null && n.textContent.startsWith(%q) && im !== null && im.complete && im.naturalWidth > 100 &&
    c.querySelector(".boxlist button.sel").dataset.box === %q && c.querySelector(".det .box.sel").dataset.box === %q; })()`,
			card, fmt.Sprintf("%s, target box %d: ", method, k), fmt.Sprint(k), fmt.Sprint(k))
	}

	if _, err := chromedp.Run(ctx, chromedp.Navigate(web.URL+"/?token="+testToken)); err != nil {
		t.Fatal(err)
	}
	wait("cards", `document.querySelectorAll(".card").length === 6`)
	want := len(s.rows[two].Predictions[0].Boxes)
	wait("boxes on the picture", fmt.Sprintf(`(() => { const c = document.querySelector(%q); const im = c.querySelector(".det img");
  return im.complete && im.naturalWidth > 100 && c.querySelectorAll(".det .box").length === %d && c.querySelectorAll(".boxlist button").length === %d; })()`, card, want, want))
	if got := eval(`String(document.getElementById("targetbox").hidden) + " " + String(document.getElementById("correctbox").hidden)`); got != "true true" {
		t.Errorf("target and right/wrong controls hidden: %s, want true true", got)
	}
	// A box sits where the detection is: its left edge at x1/width.
	b := s.rows[two].Predictions[0].Boxes[1]
	if got := eval(fmt.Sprintf(`document.querySelector(%q).style.left`, card+` .det .box[data-box="1"]`)); !strings.HasPrefix(got, fmt.Sprintf("%.3f", 100*b.Rel[0])) {
		t.Errorf("box 1 at left %s, want %.3f%%", got, 100*b.Rel[0])
	}
	wait("the best box explained", shows("Saliency", 0))
	// Select box 1 in the list.
	click(card + ` .boxlist button[data-box="1"]`)
	wait("box 1 explained", shows("Saliency", 1))
	// Box 0 again, on the picture; then another method.
	click(card + ` .det .box[data-box="0"]`)
	wait("box 0 explained", shows("Saliency", 0))
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`(() => { const e = document.getElementById("method"); e.value = "GradCAM"; e.dispatchEvent(new Event("change")); })()`)); err != nil {
		t.Fatal(err)
	}
	wait("GradCAM of box 0", shows("GradCAM", 0))
	if got := eval(`document.querySelector("#layerbox input").placeholder + " " + String(document.getElementById("layerbox").hidden)`); got != demo.DetectionLayer+" false" {
		t.Errorf("layer field: %q, want the model's layer as placeholder, shown", got)
	}
	click(card + ` .boxlist button[data-box="1"]`)
	wait("GradCAM of box 1", shows("GradCAM", 1))
	// Score times IoU: the page redraws, asking with iou=true.
	click("#iou")
	wait("GradCAM of box 0 with the IoU", `location.search.includes("iou=true")`)
	wait("GradCAM of box 0 with the IoU, drawn", shows("GradCAM", 0))
	sn.mu.Lock()
	defer sn.mu.Unlock()
	asked := map[string]bool{}
	for _, q := range sn.explains {
		if strings.Contains(q, fmt.Sprintf("i=%d&", two)) || strings.HasSuffix(q, fmt.Sprintf("i=%d", two)) {
			for _, k := range []string{"box=0", "box=1"} {
				if strings.Contains(q, k) {
					asked[k] = true
				}
			}
		}
		if strings.Contains(q, "target=") {
			t.Errorf("a detector's request with a target: %s", q)
		}
	}
	iou := false
	for _, q := range sn.explains {
		iou = iou || strings.Contains(q, "iou=true")
	}
	if !iou {
		t.Error("no request with iou=true after ticking score × IoU")
	}
	if !asked["box=0"] || !asked["box=1"] {
		t.Errorf("requests for example %d: %v, want box=0 and box=1", two, sn.explains)
	}
}
