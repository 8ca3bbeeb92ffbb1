package attr

import (
	"context"
	"math"
	"sync/atomic"
	"testing"

	"github.com/loupe-ml/loupe/linear"
	"github.com/loupe-ml/loupe/tensor"
)

// funcModel is a plain Go model on [N, 5] inputs with an interaction
// between features 0 and 1, a saturation on feature 3, and feature 2
// ignored: y = 2 x0 - x1 + x0 x1 + tanh(3 x3) + 0.5 x4.
func funcModel(calls *atomic.Int64) Func {
	return func(ctx context.Context, in []*tensor.Tensor) (*tensor.Tensor, error) {
		if calls != nil {
			calls.Add(1)
		}
		x := in[0]
		n := x.Shape[0]
		y := tensor.New(n, 1)
		for r := 0; r < n; r++ {
			v := x.F[r*5 : (r+1)*5]
			y.F[r] = 2*v[0] - v[1] + v[0]*v[1] + float32(math.Tanh(3*float64(v[3]))) + 0.5*v[4]
		}
		return y, nil
	}
}

func TestPerturbationProperties(t *testing.T) {
	ctx := context.Background()
	m := funcModel(nil)
	x := []*tensor.Tensor{randn(1, 1, 3, 5)}
	base := []*tensor.Tensor{randn(2, 0.3, 1, 5)}
	o := Options{Baselines: base}
	f := func(in *tensor.Tensor) []float64 {
		y, _ := m(ctx, []*tensor.Tensor{in})
		out := make([]float64, y.Len())
		for i, v := range y.F {
			out[i] = float64(v)
		}
		return out
	}
	full, _ := baselineFor(base[0], x[0], 0)
	fX, fB := f(x[0]), f(full)

	methods := map[string]Method{
		"FeatureAblation":      &FeatureAblation{Model: m},
		"Occlusion":            &Occlusion{Model: m, SlidingWindowShapes: [][]int{{2}}},
		"OcclusionOne":         &Occlusion{Model: m, SlidingWindowShapes: [][]int{{1}}},
		"ShapleyValueSampling": &ShapleyValueSampling{Model: m, NSamples: 7, Seed: 3},
		"ShapleyValues":        &ShapleyValues{Model: m},
		"KernelShap":           &KernelShap{Model: m, NSamples: 200, Seed: 4},
		"Lime":                 &Lime{Model: m, NSamples: 200, Interpretable: linear.LeastSquares{FitIntercept: true}, Seed: 5},
		"FeaturePermutation":   &FeaturePermutation{Model: m, Seed: 6},
	}
	results := map[string]*Result{}
	for name, meth := range methods {
		r, err := meth.Attribute(ctx, x, o)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		results[name] = r
		// The ignored feature gets nothing from the methods that ablate it
		// alone (Lime and KernelShap only estimate it, by regression; an
		// Occlusion window also covers its neighbors).
		if name == "Lime" || name == "KernelShap" || name == "Occlusion" {
			continue
		}
		for e := 0; e < 3; e++ {
			if v := r.Attributions[0].F[e*5+2]; math.Abs(float64(v)) > 1e-5 {
				t.Errorf("%s: ignored feature of example %d has attribution %g", name, e, v)
			}
		}
	}
	// Efficiency: Shapley values sum to f(x) - f(baseline), for any
	// permutations (ShapleyValueSampling) and exactly (ShapleyValues).
	for _, name := range []string{"ShapleyValueSampling", "ShapleyValues", "KernelShap"} {
		for e := 0; e < 3; e++ {
			s := float64(rowSum(results[name].Attributions, e, 3))
			if math.Abs(s-(fX[e]-fB[e])) > 1e-4 {
				t.Errorf("%s example %d: attributions sum to %g, f(x)-f(b) = %g", name, e, s, fX[e]-fB[e])
			}
		}
	}
	// Sampling converges to the exact values when the model is additive in
	// the sampled features: with all 5! orders averaged it would be exact;
	// here check the exact values against the closed form for the additive
	// part: feature 4 contributes 0.5 (x4 - b4).
	for e := 0; e < 3; e++ {
		want := 0.5 * float64(x[0].F[e*5+4]-full.F[e*5+4])
		if got := float64(results["ShapleyValues"].Attributions[0].F[e*5+4]); math.Abs(got-want) > 1e-5 {
			t.Errorf("ShapleyValues of the linear feature: %g, want %g", got, want)
		}
	}
}

// TestOcclusionOneByOneIsAblation: Occlusion with a 1x1 window and stride
// 1 is FeatureAblation with one feature per element.
func TestOcclusionOneByOneIsAblation(t *testing.T) {
	ctx := context.Background()
	nt := net(t, "cnn_s0.onnx")
	x := []*tensor.Tensor{randn(3, 1, 2, 3, 32, 32)}
	o := Options{Target: Classes(1, 5), Baselines: []*tensor.Tensor{tensor.Scalar(0.25)}}
	a, err := (&Occlusion{Model: nt, SlidingWindowShapes: [][]int{{1, 1, 1}}, PerturbationsPerEval: 256}).Attribute(ctx, x, o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := (&FeatureAblation{Model: nt, PerturbationsPerEval: 256}).Attribute(ctx, x, o)
	if err != nil {
		t.Fatal(err)
	}
	if d := tensor.MaxAbsDiff(a.Attributions[0].F, b.Attributions[0].F); d > 1e-6 {
		t.Errorf("Occlusion 1x1 and FeatureAblation differ by %g", d)
	}
}

// TestWorkersGiveTheSameResult runs a Go function model with several
// concurrent calls and checks the result does not change.
func TestWorkersGiveTheSameResult(t *testing.T) {
	ctx := context.Background()
	var calls atomic.Int64
	m := funcModel(&calls)
	x := []*tensor.Tensor{randn(7, 1, 4, 5)}
	one, err := (&FeatureAblation{Model: m, PerturbationsPerEval: 1}).Attribute(ctx, x, Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := calls.Load()
	par, err := (&FeatureAblation{Model: m, PerturbationsPerEval: 1}).Attribute(ctx, x, Options{Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load()-n != n {
		t.Errorf("%d calls with workers, %d without", calls.Load()-n, n)
	}
	if d := tensor.MaxAbsDiff(one.Attributions[0].F, par.Attributions[0].F); d != 0 {
		t.Errorf("results differ by %g with workers", d)
	}
}

// A model that gives one number for the whole batch gets attributions with
// a batch dimension of 1, as Captum's FeatureAblation.
func TestAblationScalarOutput(t *testing.T) {
	ctx := context.Background()
	sum := Func(func(ctx context.Context, in []*tensor.Tensor) (*tensor.Tensor, error) {
		var s float32
		for i, v := range in[0].F {
			s += v * float32(i%5+1)
		}
		return tensor.Scalar(s), nil
	})
	x := []*tensor.Tensor{randn(8, 1, 3, 5)}
	r, err := (&FeatureAblation{Model: sum, PerturbationsPerEval: 0}).Attribute(ctx, x, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := r.Attributions[0]
	if !tensor.SameShape(a.Shape, []int{1, 5}) {
		t.Fatalf("attribution shape %v, want [1 5]", a.Shape)
	}
	// Ablating feature j removes sum over examples of x_j*(j+1).
	for j := 0; j < 5; j++ {
		var want float32
		for r := 0; r < 3; r++ {
			want += x[0].F[r*5+j] * float32(j+1)
		}
		if d := a.F[j] - want; d > 1e-5 || d < -1e-5 {
			t.Errorf("feature %d: %g, want %g", j, a.F[j], want)
		}
	}
}
