package insights

// Detector mode: the models are object detectors (detect.Detector). Each
// example shows its detected boxes; a request names a box (Request.Box)
// and is answered with that detection's explanation: any method of the
// table with the box's class score as its target (attr.BoxScore), or
// D-RISE.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/loupe-ml/loupe/detect"
	"github.com/loupe-ml/loupe/internal/explain"
	"github.com/loupe-ml/loupe/internal/httpguard"
	"github.com/loupe-ml/loupe/internal/methods"
	"github.com/loupe-ml/loupe/tensor"
)

// Box is one detection as the page draws it.
type Box struct {
	// Index is the detection's place among the example's detections by
	// its model, best first: the box a Request names.
	Index int     `json:"index"`
	Class int     `json:"class"`
	Label string  `json:"label"`
	Score float64 `json:"score"`
	// Box is x1, y1, x2, y2 in input pixels; Rel the same as shares of
	// the input's width and height, in [0, 1].
	Box [4]float64 `json:"box"`
	Rel [4]float64 `json:"rel"`
}

// DRISE is the name of D-RISE (detect.DRISE) among a detector's methods.
const DRISE = "DRISE"

// driseParams are D-RISE's parameters over HTTP, with their bounds: at
// most 4000 model evaluations per request, in batches of at most 64
// masked images (the memory of a batch grows with the image).
var driseParams = []struct {
	methods.Param
	lo, hi int
}{
	{methods.Param{Name: "masks", Default: "500", Doc: "random masks (one model evaluation each)"}, 1, 4000},
	{methods.Param{Name: "cells", Default: "8", Doc: "side of the random grid, in cells (at most the image's side)"}, 1, 4096},
	{methods.Param{Name: "batch_size", Default: "32", Doc: "masked images per model call"}, 1, 64},
	{methods.Param{Name: "seed", Default: "0", Doc: "random seed"}, 0, math.MaxInt32},
}

// resolveDRISE returns D-RISE's parameters: the defaults with name=value
// pairs overlaid, each an integer in its bounds. Its errors are
// explain.RequestErrors.
func resolveDRISE(given []string) (methods.Values, error) {
	vals := methods.Values{}
	for _, p := range driseParams {
		vals[p.Name] = p.Default
	}
	for _, kv := range given {
		k, v, ok := strings.Cut(kv, "=")
		found := false
		for _, p := range driseParams {
			if p.Name != k {
				continue
			}
			found = true
			n, err := strconv.Atoi(v)
			if !ok || err != nil || n < p.lo || n > p.hi {
				return nil, &explain.RequestError{Err: fmt.Errorf("parameter %s=%s: want an integer from %d to %d", k, httpguard.QuoteShort(v), p.lo, p.hi)}
			}
			vals[k] = strconv.Itoa(n)
		}
		if !found {
			return nil, &explain.RequestError{Err: fmt.Errorf("%s has no parameter %s (it takes masks, cells, batch_size and seed)", DRISE, httpguard.QuoteShort(k))}
		}
	}
	return vals, nil
}

// boxesOf converts an example's detections for the page: x is the
// example's input [1, C, H, W].
func boxesOf(dets []detect.Detection, x *tensor.Tensor) []Box {
	h, w := float64(x.Shape[2]), float64(x.Shape[3])
	out := make([]Box, len(dets))
	for k, d := range dets {
		b := Box{Index: k, Class: d.Class, Label: d.Label, Score: finite(d.Score)}
		for j, v := range d.Box {
			b.Box[j] = finite(v)
			side := w
			if j%2 == 1 {
				side = h
			}
			b.Rel[j] = math.Min(1, math.Max(0, b.Box[j]/side))
		}
		out[k] = b
	}
	return out
}

// detectAll runs detector m on a run of examples of one shape, stacked
// into a batch, and returns each example's detections. Cost: one forward
// pass.
func detectAll(ctx context.Context, d *detect.Detector, exs []Example) ([][]detect.Detection, error) {
	parts := make([]*tensor.Tensor, len(exs))
	for j, ex := range exs {
		parts[j] = ex.Inputs[0]
	}
	all, err := d.Detect(ctx, stack(parts))
	if err != nil {
		return nil, err
	}
	if len(all) != len(exs) {
		return nil, fmt.Errorf("%d images gave %d lists of detections", len(exs), len(all))
	}
	return all, nil
}

// detectorPrediction summarizes a detector's detections on an example:
// the best box's class and score, and every box.
func (s *Server) detectorPrediction(model string, dets []detect.Detection, x *tensor.Tensor) Prediction {
	p := Prediction{Model: model, Predicted: -1, Name: "no detection", Boxes: boxesOf(dets, x)}
	if len(dets) > 0 {
		p.Predicted, p.Probability = dets[0].Class, finite(dets[0].Score)
		p.Name = fmt.Sprintf("%d boxes, best %s", len(dets), s.className(dets[0].Class))
		if len(dets) == 1 {
			p.Name = "1 box, " + s.className(dets[0].Class)
		}
	}
	return p
}

// checkBox checks a detector request's box and target: the box must be
// one of the example's detections by the model, and the target is the
// box's class score (a request names no other).
func (s *Server) checkBox(i int, r Request) (explain.Target, error) {
	if r.Target != "" {
		return explain.Target{}, &explain.RequestError{Err: fmt.Errorf("target %s: a detector's target is its box (ask box=N)", httpguard.QuoteShort(r.Target))}
	}
	dets := s.dets[i][r.Model]
	if len(dets) == 0 {
		return explain.Target{}, &explain.RequestError{Err: fmt.Errorf("model %s found no box in example %d: nothing to explain", s.models[r.Model].Name, i)}
	}
	if r.Box < 0 || r.Box >= len(dets) {
		return explain.Target{}, &explain.RequestError{Err: fmt.Errorf("no box %d (model %s found %d in example %d: 0 to %d)", r.Box, s.models[r.Model].Name, len(dets), i, len(dets)-1)}
	}
	return explain.Class(dets[r.Box].Class), nil
}

// explainBox explains one detection of a checked request: D-RISE, or the
// method built on the detector's network with the box's class score as
// its target (attr.BoxScore, through explain.RunDetection). The map is
// returned as [1, C, h, w].
func (s *Server) explainBox(ctx context.Context, c *checked) (*explain.Result, error) {
	m := s.models[c.Model]
	d := m.Detector
	det := s.dets[c.i][c.Model][c.Box]
	x := s.examples[c.i].Inputs[0]
	var a *tensor.Tensor
	if c.Method == DRISE {
		n := func(name string) int { v, _ := strconv.Atoi(c.vals[name]); return v }
		dr := &detect.DRISE{Detector: d, Masks: n("masks"), Cells: n("cells"), BatchSize: n("batch_size"), Seed: uint64(n("seed"))}
		if side := min(x.Shape[2], x.Shape[3]); dr.Cells > side {
			return nil, &explain.RequestError{Err: fmt.Errorf("parameter cells=%d: want 1 to %d (the image's side)", dr.Cells, side)}
		}
		var err error
		if a, err = dr.Attribute(ctx, x, []detect.Detection{det}); err != nil {
			return nil, err
		}
	} else {
		r, err := explain.RunDetection(ctx, d, x, det, c.IoU, explain.Request{Method: c.Method, Params: c.Params, Layer: s.layerOf(c), NoFiles: true})
		if err != nil {
			return nil, err
		}
		if len(r.Attributions) == 0 || r.Attributions[0] == nil {
			return nil, errors.New(c.Method + " gives no attributions of the image")
		}
		a = r.Attributions[0]
	}
	a = a.AsFloat32()
	switch a.Rank() {
	case 2: // [h, w]
		a, _ = a.Reshape(1, 1, a.Shape[0], a.Shape[1])
	case 3: // [1, h, w]
		a, _ = a.Reshape(1, 1, a.Shape[1], a.Shape[2])
	}
	if a.Rank() != 4 || a.Shape[0] != 1 {
		return nil, fmt.Errorf("%s gives attributions of shape %v: not a map of the image", c.Method, a.Shape)
	}
	return &explain.Result{Attributions: []*tensor.Tensor{a}, Targets: [][]int{{det.Class}}, Params: c.vals}, nil
}

// layerOf is a request's layer: its own, else its model's (Model.Layer).
func (s *Server) layerOf(c *checked) string {
	if c.Layer != "" {
		return c.Layer
	}
	return s.models[c.Model].Layer
}
