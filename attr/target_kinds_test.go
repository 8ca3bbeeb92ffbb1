package attr

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/tensor"
)

// fdCheck compares a function target's gradient (seedOf) with central
// differences of its values (pick) on out.
func fdCheck(t *testing.T, name string, tg Target, out *tensor.Tensor, tol float64) {
	t.Helper()
	seed, err := tg.seedOf(out)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	const h = 1e-3
	x := out.Clone()
	worst := 0.0
	for i := range x.F {
		v := x.F[i]
		x.F[i] = v + h
		up, err := tg.pick(x)
		if err != nil {
			t.Fatal(err)
		}
		x.F[i] = v - h
		dn, err := tg.pick(x)
		if err != nil {
			t.Fatal(err)
		}
		x.F[i] = v
		var fd float64
		for r := range up {
			fd += (float64(up[r]) - float64(dn[r])) / (2 * h)
		}
		worst = math.Max(worst, math.Abs(fd-float64(seed.F[i])))
	}
	if worst > tol {
		t.Errorf("%s: the gradient differs from finite differences by %g (tolerance %g)", name, worst, tol)
	}
}

func TestIoU(t *testing.T) {
	// Closed forms: a 2x2 box and a 2x2 box shifted by 1 share 1x2 of 6.
	if v, _ := IoU([4]float64{0, 0, 2, 2}, [4]float64{1, 0, 3, 2}); math.Abs(v-2.0/6) > 1e-12 {
		t.Errorf("IoU = %g, want 1/3", v)
	}
	if v, _ := IoU([4]float64{0, 0, 1, 1}, [4]float64{2, 2, 3, 3}); v != 0 {
		t.Errorf("disjoint boxes: IoU = %g", v)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for k := 0; k < 200; k++ {
		var a, b [4]float64
		for i := 0; i < 2; i++ {
			a[i], b[i] = rng.Float64()*10, rng.Float64()*10
			a[i+2], b[i+2] = a[i]+1+rng.Float64()*8, b[i]+1+rng.Float64()*8
		}
		v, g := IoU(a, b)
		for i := range a {
			const h = 1e-6
			p, m := a, a
			p[i] += h
			m[i] -= h
			vp, _ := IoU(p, b)
			vm, _ := IoU(m, b)
			if fd := (vp - vm) / (2 * h); math.Abs(fd-g[i]) > 1e-5 {
				t.Fatalf("IoU(%v, %v) = %g: d/d%d = %g, finite differences %g", a, b, v, i, g[i], fd)
			}
		}
	}
}

// BoxScore on decoded layouts (YOLOv5 rows with objectness, YOLOv8
// columns, corner boxes), with and without IoU: values by hand and
// gradients against finite differences.
func TestBoxScoreGradient(t *testing.T) {
	// One example, 3 predictions of [cx, cy, w, h, obj, c0, c1].
	out := tensor.New(1, 3, 7)
	copy(out.F[7:14], []float32{10, 10, 4, 6, 0.8, 0.1, 0.5})
	tg := BoxScore(DetectionLayout{Objectness: true}, Box{Detection: 1, Class: 1})
	v, err := tg.pick(out)
	if err != nil || math.Abs(float64(v[0])-0.4) > 1e-6 {
		t.Errorf("score = %v (%v), want 0.8*0.5", v, err)
	}
	ref := [4]float64{9, 8, 13, 13} // the box is [8, 7, 12, 13]: 3x5 of 24+20-15
	tg = BoxScore(DetectionLayout{Objectness: true}, Box{Detection: 1, Class: 1, IoU: true, Ref: ref})
	v, err = tg.pick(out)
	if want := 0.4 * 15.0 / 29; err != nil || math.Abs(float64(v[0])-want) > 1e-6 {
		t.Errorf("score*IoU = %v (%v), want %g", v, err, want)
	}
	layouts := []DetectionLayout{{Objectness: true}, {Columns: true}, {Corners: true, Objectness: true}, {Columns: true, Corners: true}}
	for _, l := range layouts {
		for _, iou := range []bool{false, true} {
			x := randn(3, 1, 2, 7, 9)
			for i := range x.F {
				x.F[i] = 5 + 2*x.F[i]
			}
			if !l.Columns {
				x, _ = x.Reshape(2, 9, 7)
			}
			b := []Box{{Detection: 2, Class: 1, IoU: iou, Ref: [4]float64{2, 3, 8, 9}}, {Detection: 0, Class: 0, IoU: iou, Ref: [4]float64{3, 3, 7, 6}}}
			fdCheck(t, "layout", BoxScore(l, b...), x, 2e-2)
		}
	}
	if _, err := BoxScore(DetectionLayout{}, Box{Detection: 9}).pick(out); err == nil || !strings.Contains(err.Error(), "detection 9") {
		t.Errorf("out-of-range detection: %v", err)
	}
	if _, err := BoxScore(DetectionLayout{}, Box{}, Box{}).pick(out); err == nil {
		t.Error("two boxes for one example: no error")
	}
}

// Mask is the masked sum of a class's plane; Similarity the cosine (or
// dot) with the reference; their gradients match finite differences.
func TestMaskAndSimilarity(t *testing.T) {
	out := randn(4, 1, 2, 3, 4, 5)
	m := tensor.New(4, 5)
	m.F[0], m.F[7], m.F[19] = 1, 1, 0.5
	v, err := Mask(2, m).pick(out)
	if err != nil {
		t.Fatal(err)
	}
	for r := 0; r < 2; r++ {
		base := r*60 + 2*20
		want := out.F[base] + out.F[base+7] + 0.5*out.F[base+19]
		if math.Abs(float64(v[r]-want)) > 1e-6 {
			t.Errorf("mask row %d: %g, want %g", r, v[r], want)
		}
	}
	fdCheck(t, "mask", Mask(1, randn(5, 1, 2, 4, 5)), out, 1e-2)
	if _, err := Mask(3, m).pick(out); err == nil {
		t.Error("class 3 of 3: no error")
	}
	emb := randn(6, 1, 3, 8)
	ref := randn(7, 1, 8)
	v, err = Similarity(ref, false).pick(emb)
	if err != nil {
		t.Fatal(err)
	}
	for r := 0; r < 3; r++ {
		var d, a, b float64
		for i := 0; i < 8; i++ {
			y, q := float64(emb.F[r*8+i]), float64(ref.F[i])
			d, a, b = d+y*q, a+y*y, b+q*q
		}
		if want := d / math.Sqrt(a*b); math.Abs(float64(v[r])-want) > 1e-5 {
			t.Errorf("cosine row %d: %g, want %g", r, v[r], want)
		}
	}
	fdCheck(t, "cosine", Similarity(ref, false), emb, 1e-2)
	fdCheck(t, "dot", Similarity(ref, true), emb, 1e-2)
	fdCheck(t, "cosine per example", Similarities(randn(8, 1, 3, 8), false), emb, 1e-2)
	if _, err := Similarities(randn(8, 1, 2, 8), false).pick(emb); err == nil {
		t.Error("2 references for 3 examples: no error")
	}
}

// pairs views a [10] output as 2 predictions of [x1, y1, x2, y2, score].
type pairs struct{}

func (pairs) Box(shape []int, y []float32, det, class int) ([4]float64, float64, error) {
	return DetectionLayout{Corners: true}.Box([]int{2, 5}, y, det, class)
}

func (pairs) BoxGrad(shape []int, y []float32, det, class int, dBox [4]float64, dScore float64, grad []float32) error {
	return DetectionLayout{Corners: true}.BoxGrad([]int{2, 5}, y, det, class, dBox, dScore, grad)
}

// Function targets work through gradient methods (Saliency's gradient
// against finite differences of the model) and perturbation methods
// (FeatureAblation's closed form on an identity model), with per-example
// parameters kept with their rows when methods expand the batch.
func TestFunctionTargetsInMethods(t *testing.T) {
	ctx := context.Background()
	nt := net(t, "cnn_s0.onnx")
	x := randn(9, 1, 2, 3, 32, 32)
	targets := map[string]Target{
		"box":        BoxScore(pairs{}, Box{Detection: 1, IoU: true, Ref: [4]float64{-1, -1, 1, 1}}, Box{Detection: 0}),
		"similarity": Similarities(randn(10, 1, 2, 10), false),
	}
	for name, tg := range targets {
		r, err := (&Saliency{Net: nt, Signed: true}).Attribute(ctx, []*tensor.Tensor{x}, Options{Target: tg})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		g := r.Attributions[0]
		for _, i := range []int{5, 1000, 3072 + 40, 3072 + 2500} {
			const h = 1e-2
			xp, xm := x.Clone(), x.Clone()
			xp.F[i] += h
			xm.F[i] -= h
			yp, err := nt.Eval(ctx, []*tensor.Tensor{xp})
			if err != nil {
				t.Fatal(err)
			}
			ym, _ := nt.Eval(ctx, []*tensor.Tensor{xm})
			vp, err := tg.pick(yp)
			if err != nil {
				t.Fatal(err)
			}
			vm, _ := tg.pick(ym)
			e := i / 3072
			fd := (float64(vp[e]) - float64(vm[e])) / (2 * h)
			if math.Abs(fd-float64(g.F[i])) > 1e-3+1e-2*math.Abs(fd) {
				t.Errorf("%s: gradient at %d is %g, finite differences %g", name, i, g.F[i], fd)
			}
		}
		// IntegratedGradients expands the batch: its completeness holds
		// only if each row keeps its example's parameters.
		ig, err := (&IntegratedGradients{Net: nt, NSteps: 64}).Attribute(ctx, []*tensor.Tensor{x}, Options{Target: tg, Delta: true})
		if err != nil {
			t.Fatalf("%s: IG: %v", name, err)
		}
		for e, d := range ig.Delta.F {
			if math.Abs(float64(d)) > 2e-2 {
				t.Errorf("%s: IG's convergence delta of example %d is %g", name, e, d)
			}
		}
	}
	id := Func(func(_ context.Context, in []*tensor.Tensor) (*tensor.Tensor, error) { return in[0].Clone(), nil })
	img := randn(11, 1, 2, 2, 3, 3)
	mask := tensor.New(2, 3, 3)
	mask.F[4], mask.F[9+8] = 1, 2 // example 0: centre; example 1: corner, weight 2
	r, err := (&FeatureAblation{Model: id, PerturbationsPerEval: 3}).Attribute(ctx, []*tensor.Tensor{img}, Options{Target: Mask(1, mask)})
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range r.Attributions[0].F {
		e, c, p := i/18, i/9%2, i%9
		want := float32(0)
		if c == 1 {
			want = mask.F[e*9+p] * img.F[i]
		}
		if math.Abs(float64(v-want)) > 1e-6 {
			t.Errorf("FeatureAblation with a mask target at %d: %g, want %g", i, v, want)
		}
	}
}
