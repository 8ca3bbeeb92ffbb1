package detect

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/tensor"
)

// One random detector exported three ways (testdata/exports.py): its raw
// grid, and its decoded output laid out as YOLOv5 and YOLOv8 exports.
// loupe decodes the three to the same predictions, and the box target's
// input gradient is the same whether the decoding runs in the graph or in
// Go.
func TestExportLayouts(t *testing.T) {
	ctx := context.Background()
	classes := []string{"a", "b", "c"}
	dets := map[string]*Detector{}
	for name, c := range map[string]Config{
		"grid.onnx":         {Layout: Grid, Classes: classes, Objectness: true, Stride: 8, Anchors: [][2]float64{{14, 14}}, Sigmoid: true},
		"yolov5_style.onnx": {Layout: Rows, Classes: classes, Objectness: true},
		"yolov8_style.onnx": {Layout: Columns, Classes: classes},
	} {
		m, err := engine.Load(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		nt, err := attr.NewNet(m)
		if err != nil {
			t.Fatal(err)
		}
		dets[name] = &Detector{Net: nt, Config: c}
	}
	rng := rand.New(rand.NewPCG(7, 8))
	x := tensor.New(1, 3, 64, 64)
	for i := range x.F {
		x.F[i] = float32(rng.Float64())
	}
	preds := map[string][]Prediction{}
	for name, d := range dets {
		out, err := d.Net.Eval(ctx, []*tensor.Tensor{x})
		if err != nil {
			t.Fatal(err)
		}
		if preds[name], err = d.Config.Decode(out.Shape[1:], out.F); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	ref := preds["grid.onnx"]
	for name, p := range preds {
		if len(p) != 64 {
			t.Fatalf("%s: %d predictions, want 64", name, len(p))
		}
		for i := range p {
			for k := 0; k < 4; k++ {
				if math.Abs(p[i].Box[k]-ref[i].Box[k]) > 1e-4 {
					t.Fatalf("%s: prediction %d's box %v, the grid's %v", name, i, p[i].Box, ref[i].Box)
				}
			}
			for c := range classes {
				s, r := p[i].Objectness*p[i].Scores[c], ref[i].Objectness*ref[i].Scores[c]
				if math.Abs(s-r) > 1e-6 {
					t.Fatalf("%s: prediction %d class %d scores %g, the grid %g", name, i, c, s, r)
				}
			}
		}
	}
	boxes := []Detection{{Index: 9, Class: 1, Box: [4]float64{2, 4, 20, 22}}, {Index: 45, Class: 2, Box: [4]float64{30, 35, 50, 52}}}
	grads := map[string]*tensor.Tensor{}
	for name, d := range dets {
		r, err := d.Explain(ctx, &attr.Saliency{Net: d.Net, Signed: true}, x, boxes, true)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		grads[name] = r.Attributions[0]
	}
	g0 := grads["grid.onnx"]
	var norm float64
	for _, v := range g0.F {
		norm = math.Max(norm, math.Abs(float64(v)))
	}
	if norm == 0 {
		t.Fatal("the box target's gradient is zero")
	}
	for name, g := range grads {
		if d := tensor.MaxAbsDiff(g.F, g0.F); float64(d) > 1e-4*norm {
			t.Errorf("%s: the box target's gradient differs from the grid's by %g (max %g)", name, d, norm)
		}
	}
}
