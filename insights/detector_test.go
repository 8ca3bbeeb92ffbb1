package insights

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/detect"
	"github.com/loupe-ml/loupe/internal/demo"
	"github.com/loupe-ml/loupe/tensor"
)

// sceneExamples are n generated scenes of the demo detector, from seed
// 5000 on.
func sceneExamples(n int) []Example {
	var exs []Example
	for i := 0; i < n; i++ {
		img, _ := demo.Scene(uint64(5000 + i))
		x, _ := img.Reshape(1, 3, demo.SceneSize, demo.SceneSize)
		exs = append(exs, Example{ID: fmt.Sprintf("scene-%d", i), Inputs: []*tensor.Tensor{x}, Label: -1})
	}
	return exs
}

func demoDetector(t *testing.T) *detect.Detector {
	t.Helper()
	d, err := demo.Detector()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// detectorServer serves eight scenes with the demo detector, whose layer
// for the CAMs is its last convolution.
func detectorServer(t *testing.T) (*Server, *detect.Detector) {
	t.Helper()
	d := demoDetector(t)
	s, err := NewModels(context.Background(), []Model{{Name: "det", Detector: d, Layer: demo.DetectionLayer}}, sceneExamples(8),
		Options{Classes: d.Config.Classes})
	if err != nil {
		t.Fatal(err)
	}
	return s, d
}

// mapOf returns the attributions the server computed for a request on
// example i.
func mapOf(t *testing.T, s *Server, i int, r Request) *tensor.Tensor {
	t.Helper()
	c, err := s.check(i, r)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.attributions(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return res.Attributions[0]
}

func near(t *testing.T, what string, got, want *tensor.Tensor, tol float64) {
	t.Helper()
	if got.Len() != want.Len() {
		t.Fatalf("%s: %v values, want %v", what, got.Shape, want.Shape)
	}
	for k := range got.F {
		if math.Abs(float64(got.F[k]-want.F[k])) > tol {
			t.Fatalf("%s: value %d is %g, want %g", what, k, got.F[k], want.F[k])
		}
	}
}

func differ(a, b *tensor.Tensor) bool {
	for k := range a.F {
		if math.Abs(float64(a.F[k]-b.F[k])) > 1e-6 {
			return true
		}
	}
	return false
}

// The detector's boxes are its detections after NMS, and a box's
// explanation is the method's on that detection alone: Saliency and
// GradCAM with the box's score as target, and D-RISE, equal to detect's.
func TestDetectorBoxes(t *testing.T) {
	s, d := detectorServer(t)
	ctx := context.Background()
	two := -1 // an example with two boxes or more
	for i, ex := range s.examples {
		want, err := d.Detect(ctx, ex.Inputs[0])
		if err != nil {
			t.Fatal(err)
		}
		p := s.rows[i].Predictions[0]
		if len(p.Boxes) != len(want[0]) {
			t.Fatalf("example %d: %d boxes, want %d", i, len(p.Boxes), len(want[0]))
		}
		for k, b := range p.Boxes {
			w := want[0][k]
			// The batch of eight and one image alone differ by rounding.
			ok := b.Index == k && b.Class == w.Class && math.Abs(b.Score-w.Score) < 1e-6
			for j, v := range b.Rel {
				ok = ok && math.Abs(b.Box[j]-w.Box[j]) < 1e-4 && math.Abs(v-math.Min(1, math.Max(0, b.Box[j]/demo.SceneSize))) < 1e-12
			}
			if !ok {
				t.Errorf("example %d box %d: %+v, want %+v", i, k, b, w)
			}
		}
		if len(p.Boxes) > 0 && (p.Predicted != p.Boxes[0].Class || p.Probability != p.Boxes[0].Score) {
			t.Errorf("example %d: predicted %d %g, want the best box's", i, p.Predicted, p.Probability)
		}
		if len(p.Boxes) >= 2 && two < 0 {
			two = i
		}
	}
	if two < 0 {
		t.Fatal("no scene with two boxes")
	}
	x := s.examples[two].Inputs[0]
	dets := s.dets[two][0]

	// Saliency per box: the gradient of that box's score.
	sal0 := mapOf(t, s, two, Request{Method: "Saliency", Box: 0})
	sal1 := mapOf(t, s, two, Request{Method: "Saliency", Box: 1})
	for k, got := range []*tensor.Tensor{sal0, sal1} {
		r, err := d.Explain(ctx, &attr.Saliency{Net: d.Net}, x, dets[k:k+1], false)
		if err != nil {
			t.Fatal(err)
		}
		near(t, fmt.Sprintf("Saliency box %d", k), got, r.Attributions[0], 1e-6)
	}
	if !differ(sal0, sal1) {
		t.Error("boxes 0 and 1 have the same Saliency map")
	}
	// With the IoU: the score times the IoU, as detect's target with iou.
	salIoU := mapOf(t, s, two, Request{Method: "Saliency", Box: 1, IoU: true})
	r, err := d.Explain(ctx, &attr.Saliency{Net: d.Net}, x, dets[1:2], true)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "Saliency box 1 with IoU", salIoU, r.Attributions[0], 1e-6)
	if !differ(salIoU, sal1) {
		t.Error("box 1's Saliency is the same with the IoU and without")
	}
	// GradCAM on the model's layer (no layer in the request).
	cam := mapOf(t, s, two, Request{Method: "GradCAM", Box: 1})
	want, err := d.GradCAM(ctx, x, dets[1:2], demo.DetectionLayer, false)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "GradCAM box 1", cam, want, 1e-5)
	if !tensor.SameShape(cam.Shape, []int{1, 1, demo.SceneSize, demo.SceneSize}) {
		t.Errorf("GradCAM map of shape %v", cam.Shape)
	}
	// D-RISE.
	dr := mapOf(t, s, two, Request{Method: DRISE, Box: 1, Params: []string{"masks=40", "cells=4", "seed=3"}})
	want, err = (&detect.DRISE{Detector: d, Masks: 40, Cells: 4, BatchSize: 32, Seed: 3}).Attribute(ctx, x, dets[1:2])
	if err != nil {
		t.Fatal(err)
	}
	near(t, "D-RISE box 1", dr, want, 1e-6)

	// Filter by class: the examples with a box of it.
	for c := range d.Config.Classes {
		rows, err := s.Examples(Filter{Class: c, Model: -1})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for i := range s.rows {
			for _, b := range s.rows[i].Predictions[0].Boxes {
				if b.Class == c {
					n++
					break
				}
			}
		}
		if len(rows) != n {
			t.Errorf("class %d: %d examples, want %d", c, len(rows), n)
		}
	}
	if _, err := s.Examples(Filter{Class: -1, Model: -1, Correct: "right"}); err == nil {
		t.Error("right or wrong for a detector: no error")
	}
}

// The detector API: boxes in the examples, box= chooses the explained
// detection, bad boxes and targets are refused with 400 before anything
// runs, and DRISE is offered with bounded parameters.
func TestDetectorHandler(t *testing.T) {
	s, _ := detectorServer(t)
	h := handler(t, s)
	code, _, b := get(t, h, "/api/summary")
	var in info
	if code != 200 || json.Unmarshal(b, &in) != nil || !in.Detector || in.Models[0].Layer != demo.DetectionLayer {
		t.Fatalf("summary: %d %s", code, b)
	}
	code, _, b = get(t, h, "/api/methods")
	if code != 200 || !strings.Contains(string(b), `"name":"DRISE"`) {
		t.Errorf("methods: %d, DRISE missing", code)
	}
	code, _, b = get(t, h, "/api/examples")
	var page examplesPage
	if code != 200 || json.Unmarshal(b, &page) != nil || len(page.Examples) != 8 {
		t.Fatalf("examples: %d %.300s", code, b)
	}
	two, one, none := -1, -1, -1
	for _, r := range page.Examples {
		switch n := len(r.Predictions[0].Boxes); {
		case n >= 2 && two < 0:
			two = r.Index
		case n == 1 && one < 0:
			one = r.Index
		case n == 0 && none < 0:
			none = r.Index
		}
	}
	if two < 0 || one < 0 {
		t.Fatalf("want scenes with one box and with two: %.500s", b)
	}
	for _, box := range []int{0, 1} {
		code, ctype, b := get(t, h, fmt.Sprintf("/api/explain?i=%d&method=Saliency&box=%d", two, box))
		var e Explanation
		if code != 200 || ctype != "application/json" || json.Unmarshal(b, &e) != nil {
			t.Fatalf("explain box %d: %d %s %.300s", box, code, ctype, b)
		}
		want := page.Examples[two].Predictions[0].Boxes[box]
		if e.Box == nil || *e.Box != want || len(e.Parts) != 1 || !strings.HasPrefix(e.Parts[0].Image, "data:image/png;base64,") {
			t.Errorf("explain box %d: box %+v (want %+v), %d parts", box, e.Box, want, len(e.Parts))
		}
		if e.Target != want.Label {
			t.Errorf("explain box %d: target %q, want %q", box, e.Target, want.Label)
		}
		code, ctype, _ = get(t, h, fmt.Sprintf("/api/attribution?i=%d&method=GradCAM&box=%d", two, box))
		if code != 200 || ctype != "image/png" {
			t.Errorf("attribution box %d: %d %s", box, code, ctype)
		}
	}
	// Without box=: the best box.
	if code, _, b := get(t, h, fmt.Sprintf("/api/explain?i=%d&method=Saliency", two)); code != 200 || !strings.Contains(string(b), `"box":{"index":0,`) {
		t.Errorf("explain without box: %d %.200s", code, b)
	}
	if code, _, _ := get(t, h, fmt.Sprintf("/api/explain?i=%d&method=DRISE&param=masks=20&box=1", two)); code != 200 {
		t.Errorf("DRISE: %d", code)
	}
	bad := map[string]string{
		fmt.Sprintf("i=%d&method=Saliency&box=-1", two):                       "no box -1",
		fmt.Sprintf("i=%d&method=Saliency&box=99", two):                       "no box 99",
		fmt.Sprintf("i=%d&method=Saliency&box=1", one):                        "no box 1",
		fmt.Sprintf("i=%d&method=Saliency&box=x", two):                        "box",
		fmt.Sprintf("i=%d&method=Saliency&box=99999999999999999999", two):     "box",
		fmt.Sprintf("i=%d&method=Saliency&box=0&target=1", two):               "a detector's target is its box",
		fmt.Sprintf("i=%d&method=DRISE&param=masks=0", two):                   "masks",
		fmt.Sprintf("i=%d&method=DRISE&param=masks=1000000000", two):          "masks",
		fmt.Sprintf("i=%d&method=DRISE&param=cells=100", two):                 "cells=100",
		fmt.Sprintf("i=%d&method=DRISE&param=batch_size=65", two):             "batch_size",
		fmt.Sprintf("i=%d&method=DRISE&param=feature_mask=/etc/passwd", two):  "no parameter",
		fmt.Sprintf("i=%d&method=IntegratedGradients&param=n_steps=1e9", two): "n_steps",
		"i=99&method=Saliency&box=0":                                          "no example 99",
		fmt.Sprintf("i=%d&method=Saliency&iou=maybe", two):                    "iou",
		fmt.Sprintf("i=%d&method=GradCAM&param=aug_smooth=true", two):         "aug_smooth",
	}
	if none >= 0 {
		bad[fmt.Sprintf("i=%d&method=Saliency", none)] = "found no box"
	}
	for q, want := range bad {
		for _, route := range []string{"/api/explain", "/api/attribution"} {
			resp := do(t, h, route+"?"+q, bearer(testToken))
			if msg := body(resp); resp.StatusCode != http.StatusBadRequest || !strings.Contains(msg, want) {
				t.Errorf("%s?%s: %s %q, want 400 mentioning %q", route, q, resp.Status, msg, want)
			}
		}
	}
	// box= to classifiers is refused.
	hc := handler(t, testServer(t))
	for _, q := range []string{"box=0", "iou=true"} {
		if resp := do(t, hc, "/api/explain?i=0&method=Saliency&"+q, bearer(testToken)); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s to a classifier: %s", q, resp.Status)
		}
	}
	// iou=true over HTTP asks for the IoU target's attributions.
	code, _, b = get(t, h, fmt.Sprintf("/api/explain?i=%d&method=Saliency&box=1&iou=true", two))
	var e Explanation
	if code != 200 || json.Unmarshal(b, &e) != nil || e.Box == nil || e.Box.Index != 1 {
		t.Errorf("iou=true: %d %.200s", code, b)
	}
	if c, err := s.check(two, Request{Method: "Saliency", Box: 1, IoU: true}); err != nil || !c.IoU {
		t.Errorf("check keeps IoU: %v", err)
	} else if _, ok := s.results.get(c.key); !ok {
		t.Error("iou=true did not compute the IoU target's attributions")
	}
	// Without the token, nothing.
	if resp := do(t, h, "/api/explain?"+url.Values{"i": {"0"}, "method": {"Saliency"}, "box": {"0"}}.Encode(), nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without the token: %s", resp.Status)
	}
}

// Detectors and classifiers are not mixed; a detector's input is an image.
func TestDetectorErrors(t *testing.T) {
	d := demoDetector(t)
	_, err := NewModels(context.Background(), []Model{{Name: "det", Detector: d}, {Name: "cls", Net: demoNet(t)}}, sceneExamples(1), Options{})
	if err == nil || !strings.Contains(err.Error(), "detectors") {
		t.Errorf("mixed: %v", err)
	}
	bad := *d
	bad.Config.Layout = "nonsense"
	if _, err := NewModels(context.Background(), []Model{{Detector: &bad}}, sceneExamples(1), Options{}); err == nil || !strings.Contains(err.Error(), "layout") {
		t.Errorf("bad configuration: %v", err)
	}
	if _, err := NewModels(context.Background(), []Model{{Detector: d}}, sceneExamples(1), Options{Inputs: []Input{{Modality: Features}}}); err == nil || !strings.Contains(err.Error(), "image") {
		t.Errorf("features input: %v", err)
	}
}
