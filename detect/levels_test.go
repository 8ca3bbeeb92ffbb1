package detect

import (
	"cmp"
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// levelsConfig declares the three levels of testdata/levels.onnx.
func levelsConfig() Config {
	return Config{Layout: Grid, Classes: []string{"a", "b"}, Objectness: true, Sigmoid: true, Levels: []Level{
		{Output: "p3", Stride: 8, Anchors: [][2]float64{{10, 13}, {16, 30}}},
		{Output: "p4", Stride: 16, Anchors: [][2]float64{{30, 61}, {62, 45}}},
		{Output: "p5", Stride: 32, Anchors: [][2]float64{{59, 119}, {116, 90}}},
	}}
}

func loadModel(t *testing.T, name string) *engine.Model {
	t.Helper()
	m, err := engine.Load(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A raw three-level head (testdata/levels.py), joined by loupe, decodes to
// the predictions PyTorch's YOLOv5 decoding gives (the same network
// exported with its decoding and concatenation in the graph), and the box
// target's input gradient through the joined output is that of the
// decoded export.
func TestLevels(t *testing.T) {
	ctx := context.Background()
	d, err := Open(loadModel(t, "levels.onnx"), levelsConfig())
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range [][2]int{{8, 12}, {4, 6}, {2, 3}} {
		if g := d.Config.Levels[i].Grid; g != want {
			t.Fatalf("level %d: grid %v read from the model, want %v", i, g, want)
		}
	}
	if d.Net.Output != JoinedOutput {
		t.Fatalf("the net explains %q, want %q", d.Net.Output, JoinedOutput)
	}
	ref, err := Open(loadModel(t, "levels_rows.onnx"), Config{Layout: Rows, Classes: []string{"a", "b"}, Objectness: true})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	x := tensor.New(1, 3, 64, 96)
	for i := range x.F {
		x.F[i] = float32(rng.Float64())
	}
	decode := func(d *Detector) []Prediction {
		out, err := d.Net.Eval(ctx, []*tensor.Tensor{x})
		if err != nil {
			t.Fatal(err)
		}
		p, err := d.Config.Decode(out.Shape[1:], out.F)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	got, want := decode(d), decode(ref)
	if len(got) != 252 || len(want) != 252 {
		t.Fatalf("%d and %d predictions, want 252", len(got), len(want))
	}
	for i := range got {
		for k := 0; k < 4; k++ {
			if math.Abs(got[i].Box[k]-want[i].Box[k]) > 1e-4*math.Max(1, math.Abs(want[i].Box[k])) {
				t.Fatalf("prediction %d: box %v, PyTorch's %v", i, got[i].Box, want[i].Box)
			}
		}
		for c := range got[i].Scores {
			if s, r := got[i].Objectness*got[i].Scores[c], want[i].Objectness*want[i].Scores[c]; math.Abs(s-r) > 1e-6 {
				t.Fatalf("prediction %d class %d: score %g, PyTorch's %g", i, c, s, r)
			}
		}
	}
	// Detections from each level (p3: 0-191, p4: 192-239, p5: 240-251),
	// their reference boxes shifted from the predicted ones.
	dets := []Detection{{Index: 101, Class: 0}, {Index: 217, Class: 1}, {Index: 250, Class: 1}}
	for i := range dets {
		b := want[dets[i].Index].Box
		dets[i].Box = [4]float64{b[0] + 2, b[1] - 1, b[2] + 3, b[3] + 1}
	}
	// The same levels laid out [N, A, H, W, K] (YOLOv5's Detect in
	// training mode): transposed by Join, the same predictions.
	d5, err := Open(loadModel(t, "levels_5d.onnx"), levelsConfig())
	if err != nil {
		t.Fatal(err)
	}
	got5 := decode(d5)
	for i := range got5 {
		if got5[i].Box != got[i].Box || got5[i].Objectness != got[i].Objectness || got5[i].Scores[1] != got[i].Scores[1] {
			t.Fatalf("[N, A, H, W, K] levels: prediction %d is %+v, from [N, A*K, H, W] levels %+v", i, got5[i], got[i])
		}
	}
	grads := [3]*tensor.Tensor{}
	for i, dd := range []*Detector{d, ref, d5} {
		r, err := dd.Explain(ctx, &attr.Saliency{Net: dd.Net, Signed: true}, x, dets, true)
		if err != nil {
			t.Fatal(err)
		}
		grads[i] = r.Attributions[0]
	}
	for e := range dets {
		n := grads[0].Len() / len(dets)
		g, r := grads[0].F[e*n:(e+1)*n], grads[1].F[e*n:(e+1)*n]
		var norm float64
		for _, v := range r {
			norm = math.Max(norm, math.Abs(float64(v)))
		}
		if norm == 0 {
			t.Fatalf("detection %d: the decoded export's gradient is zero", e)
		}
		diff := tensor.MaxAbsDiff(g, r)
		t.Logf("detection %d: gradient differs from the decoded export's by %.2g (max %.2g)", e, diff, norm)
		if float64(diff) > 1e-4*norm || tensor.MaxAbsDiff(grads[2].F[e*n:(e+1)*n], g) > 0 {
			t.Errorf("detection %d: the joined levels' gradient differs from the decoded export's by %g (max %g)", e, diff, norm)
		}
	}
	// The whole pipeline: detections after NMS, GradCAM per box.
	d.ScoreThreshold = 0.01
	found, err := d.Detect(ctx, x)
	if err != nil {
		t.Fatal(err)
	}
	if len(found[0]) == 0 {
		t.Fatal("no detection")
	}
	maps, err := d.GradCAM(ctx, x, found[0][:1], "", false)
	if err != nil {
		t.Fatal(err)
	}
	if maps.Shape[0] != 1 {
		t.Fatalf("GradCAM maps of shape %v", maps.Shape)
	}
	// GradCAM's default layer is the last convolution all levels share
	// (the stem's): each level's detection has a map there.
	layer, err := d.CAMLayer()
	if err != nil || layer != "/stem/Conv_output_0" {
		t.Fatalf("CAM layer %q (%v), want the stem's convolution", layer, err)
	}
	if maps, err = d.GradCAM(ctx, x, dets, "", false); err != nil {
		t.Fatal(err)
	}
	n := maps.Len() / len(dets)
	for e := range dets {
		if tensor.MaxAbsDiff(maps.F[e*n:(e+1)*n], make([]float32, n)) == 0 {
			t.Errorf("detection %d (prediction %d): empty GradCAM map", e, dets[e].Index)
		}
	}
	// D-RISE reads the joined levels too: the same maps as from the
	// decoded export (the same random masks, the same predictions).
	var dr [2]*tensor.Tensor
	for i, dd := range []*Detector{d, ref} {
		dd.ScoreThreshold = 0.01
		if dr[i], err = (&DRISE{Detector: dd, Masks: 16, Seed: 1}).Attribute(ctx, x, found[0][:2]); err != nil {
			t.Fatal(err)
		}
	}
	if tensor.MaxAbsDiff(dr[1].F, make([]float32, dr[1].Len())) == 0 {
		t.Fatal("D-RISE maps are zero")
	}
	if diff := tensor.MaxAbsDiff(dr[0].F, dr[1].F); diff > 1e-5 {
		t.Errorf("D-RISE maps differ by %g between the joined levels and the decoded export", diff)
	}
}

// A configuration that does not fit the model is an error naming the
// output.
func TestLevelsErrors(t *testing.T) {
	m := loadModel(t, "levels.onnx")
	for name, tc := range map[string]struct {
		edit func(*Config)
		want string
	}{
		"missing level":  {func(c *Config) { c.Levels = c.Levels[:2] }, `"p5"`},
		"extra level":    {func(c *Config) { c.Levels = append(c.Levels, Level{Output: "p6", Stride: 64}) }, `"p6"`},
		"wrong classes":  {func(c *Config) { c.Classes = append(c.Classes, "c") }, `"p3"`},
		"wrong anchors":  {func(c *Config) { c.Levels[1].Anchors = c.Levels[1].Anchors[:1] }, `"p4"`},
		"wrong grid":     {func(c *Config) { c.Levels[2].Grid = [2]int{3, 2} }, `"p5"`},
		"same output":    {func(c *Config) { c.Levels[1].Output = "p3" }, `"p3"`},
		"no stride":      {func(c *Config) { c.Levels[0].Stride = 0 }, `"p3"`},
		"global stride":  {func(c *Config) { c.Stride = 8 }, "per level"},
		"levels on rows": {func(c *Config) { c.Layout = Rows; c.Sigmoid = false }, "levels"},
	} {
		c := levelsConfig()
		tc.edit(&c)
		_, err := Open(m, c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one naming %s", name, err, tc.want)
		}
	}
	// The same on [N, A, H, W, K] levels.
	m5 := loadModel(t, "levels_5d.onnx")
	for name, edit := range map[string]func(*Config){
		"anchors": func(c *Config) { c.Levels[2].Anchors = c.Levels[2].Anchors[:1] },
		"classes": func(c *Config) { c.Classes = c.Classes[:1] },
	} {
		c := levelsConfig()
		edit(&c)
		if _, err := Open(m5, c); err == nil || !strings.Contains(err.Error(), `"p`) || !strings.Contains(err.Error(), "H, W, ") {
			t.Errorf("[N, A, H, W, K] levels, wrong %s: error %v, want one naming the output and the shape [N, A, H, W, K]", name, err)
		}
	}
	// A level whose grid the model leaves symbolic needs it declared.
	sym := graph.ValueInfo{Name: "p3", DType: tensor.Float32, Shape: []graph.Dim{{Value: -1, Param: "batch"}, {Value: 14}, {Value: -1, Param: "h"}, {Value: -1, Param: "w"}}}
	c0 := levelsConfig()
	if _, err := c0.levelShape(0, sym); err == nil || !strings.Contains(err.Error(), `"p3"`) || !strings.Contains(err.Error(), "grid") {
		t.Errorf("symbolic grid, none declared: error %v, want one asking for the grid of p3", err)
	}
	c0.Levels[0].Grid = [2]int{8, 12}
	if five, err := c0.levelShape(0, sym); err != nil || five {
		t.Errorf("symbolic grid, declared: %v, %v", five, err)
	}
	// Decoding an output that is not the joined levels.
	c := levelsConfig()
	if _, err := c.Predictions([]int{1764}); err == nil || !strings.Contains(err.Error(), `"p3"`) {
		t.Errorf("grid sizes unknown: error %v, want one naming p3", err)
	}
	for i, g := range [][2]int{{8, 12}, {4, 6}, {2, 3}} {
		c.Levels[i].Grid = g
	}
	if p, err := c.Predictions([]int{1764}); err != nil || p != 252 {
		t.Errorf("joined levels: %d predictions, %v; want 252", p, err)
	}
	if _, err := c.Predictions([]int{14, 8, 12}); err == nil || !strings.Contains(err.Error(), "p5 [14, 2, 3]") {
		t.Errorf("one level's shape: error %v, want one listing the levels", err)
	}
}

// The box target's gradient through joined levels (levels of different
// anchor counts, an anchor-free one among them) matches finite differences
// of its value, both on the joined output (Config.BoxGrad) and on the
// input of the joined model.
func TestLevelsGradient(t *testing.T) {
	c := Config{Layout: Grid, Classes: []string{"a", "b"}, Objectness: true, Sigmoid: true, Levels: []Level{
		{Output: "p3", Stride: 4, Anchors: [][2]float64{{6, 10}, {12, 8}}, Grid: [2]int{3, 4}},
		{Output: "p4", Stride: 8, Grid: [2]int{2, 2}},
	}}
	rng := rand.New(rand.NewPCG(5, 6))
	out := tensor.New(2, c.vec()*(2*12+4))
	for i := range out.F {
		out.F[i] = float32(rng.NormFloat64())
	}
	p, err := c.Predictions(out.Shape[1:])
	if err != nil || p != 28 {
		t.Fatalf("%d predictions (%v), want 28", p, err)
	}
	for _, iou := range []bool{false, true} {
		boxes := []attr.Box{{Detection: 17, Class: 1, IoU: iou, Ref: [4]float64{2, 3, 10, 12}},
			{Detection: 26, Class: 0, IoU: iou, Ref: [4]float64{5, 5, 16, 14}}}
		tg := attr.BoxScore(c, boxes...)
		seed := tensor.New(out.Shape...)
		grads(t, c, boxes, out, seed)
		const h = 1e-3
		worst, norm := 0.0, 0.0
		for i := range out.F {
			v := out.F[i]
			out.F[i] = v + h
			up := values(t, tg, out)
			out.F[i] = v - h
			dn := values(t, tg, out)
			out.F[i] = v
			fd := (up - dn) / (2 * h)
			worst = math.Max(worst, math.Abs(fd-float64(seed.F[i])))
			norm = math.Max(norm, math.Abs(fd))
		}
		t.Logf("IoU %v: gradient on the joined output off finite differences by %.2g (max %.2g)", iou, worst, norm)
		if norm == 0 || worst > 5e-3 {
			t.Errorf("IoU %v: gradient off finite differences by %g (max %g)", iou, worst, norm)
		}
	}

	// Through the joined model: the input gradient of one box's target.
	ctx := context.Background()
	d, err := Open(loadModel(t, "levels.onnx"), levelsConfig())
	if err != nil {
		t.Fatal(err)
	}
	x := tensor.New(1, 3, 64, 96)
	for i := range x.F {
		x.F[i] = float32(rng.Float64())
	}
	det := Detection{Index: 205, Class: 1}
	pre, err := d.Net.Eval(ctx, []*tensor.Tensor{x})
	if err != nil {
		t.Fatal(err)
	}
	b, _, _ := d.Config.Box(pre.Shape[1:], pre.F, det.Index, det.Class)
	det.Box = [4]float64{b[0] + 3, b[1] + 2, b[2] - 1, b[3] + 2}
	r, err := d.Explain(ctx, &attr.Saliency{Net: d.Net, Signed: true}, x, []Detection{det}, true)
	if err != nil {
		t.Fatal(err)
	}
	g := r.Attributions[0]
	tg := det.Target(d.Config, true)
	value := func() float64 {
		out, err := d.Net.Eval(ctx, []*tensor.Tensor{x})
		if err != nil {
			t.Fatal(err)
		}
		return values(t, tg, out)
	}
	// The 12 input elements of largest gradient.
	idx := make([]int, len(g.F))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(math.Abs(float64(g.F[b])), math.Abs(float64(g.F[a]))) })
	if g.F[idx[0]] == 0 {
		t.Fatal("the box target's input gradient is zero")
	}
	const h = 1e-2
	worst := 0.0
	for _, i := range idx[:12] {
		v := x.F[i]
		x.F[i] = v + h
		up := value()
		x.F[i] = v - h
		dn := value()
		x.F[i] = v
		fd := (up - dn) / (2 * h)
		worst = math.Max(worst, math.Abs(fd-float64(g.F[i])))
		if math.Abs(fd-float64(g.F[i])) > 2e-2*math.Abs(float64(g.F[idx[0]])) {
			t.Errorf("input %d: gradient %g, finite differences %g", i, g.F[i], fd)
		}
	}
	t.Logf("input gradient off finite differences by %.2g (max %.2g)", worst, math.Abs(float64(g.F[idx[0]])))
}
