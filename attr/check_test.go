package attr

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// sumModel is a perturbation model: each row's sum, as one output.
var sumModel = Func(func(_ context.Context, in []*tensor.Tensor) (*tensor.Tensor, error) {
	x := in[0]
	n := x.Shape[0]
	out := tensor.New(n, 1)
	per := x.Len() / max(n, 1)
	for i := range n {
		for _, v := range x.F[i*per : (i+1)*per] {
			out.F[i] += v
		}
	}
	return out, nil
})

// TestHostileParameters: each of these panicked (makeslice with negative
// or oversized lengths), returned all-NaN attributions with no error, or
// ran without end; each must now be an error naming the field.
func TestHostileParameters(t *testing.T) {
	ctx := context.Background()
	nt := net(t, "mlp_s0.onnx")
	x := []*tensor.Tensor{randn(1, 1, 2, 6)}
	dist := []*tensor.Tensor{randn(2, 1, 3, 6)}
	o := Options{Target: Class(0)}
	ob := Options{Target: Class(0), Baselines: dist}
	x4 := []*tensor.Tensor{randn(3, 1, 1, 4)}
	po := Options{Target: Class(0)}
	cases := []struct {
		name, field string
		m           Method
		o           Options
		in          []*tensor.Tensor
	}{
		{"GradientShap n_samples=-3", "NSamples", &GradientShap{Net: nt, NSamples: -3}, ob, x},
		{"GradientShap n_samples=1e9", "NSamples", &GradientShap{Net: nt, NSamples: 1e9}, ob, x},
		{"GradientShap stdevs=NaN", "Stdevs", &GradientShap{Net: nt, Stdevs: []float64{math.NaN()}}, ob, x},
		{"GradientShap stdevs=-1", "Stdevs", &GradientShap{Net: nt, Stdevs: []float64{-1}}, ob, x},
		{"Lime n_samples=-5", "NSamples", &Lime{Model: sumModel, NSamples: -5}, po, x4},
		{"KernelShap n_samples=-5", "NSamples", &KernelShap{Model: sumModel, NSamples: -5}, po, x4},
		{"ShapleyValueSampling n_samples=-5", "NSamples", &ShapleyValueSampling{Model: sumModel, NSamples: -5}, po, x4},
		{"ShapleyValues MaxFeatures=100", "MaxFeatures", &ShapleyValues{Model: sumModel, MaxFeatures: 100}, po, x4},
		{"FeatureAblation ppe=-1", "PerturbationsPerEval", &FeatureAblation{Model: sumModel, PerturbationsPerEval: -1}, po, x4},
		{"Occlusion ppe=1e9", "PerturbationsPerEval", &Occlusion{Model: sumModel, SlidingWindowShapes: [][]int{{1}}, PerturbationsPerEval: 1e9}, po, x4},
		{"NoiseTunnel nt_samples=-3", "NSamples", &NoiseTunnel{Method: &Saliency{Net: nt}, NSamples: -3}, o, x},
		{"NoiseTunnel stdevs=Inf", "Stdevs", &NoiseTunnel{Method: &Saliency{Net: nt}, Stdevs: []float64{math.Inf(1)}}, o, x},
		{"LRP epsilon=NaN", "Epsilon", &LRP{Net: nt, Rules: func(*graph.Node) *LRPRule { return &LRPRule{Kind: Epsilon, Epsilon: math.NaN()} }}, o, x},
		{"IntegratedGradients n_steps=1e9", "NSteps", &IntegratedGradients{Net: nt, NSteps: 1e9}, o, x},
		{"IntegratedGradients n_steps=-2", "NSteps", &IntegratedGradients{Net: nt, NSteps: -2}, o, x},
		{"IntegratedGradients internal_batch_size=-1", "InternalBatchSize", &IntegratedGradients{Net: nt, InternalBatchSize: -1}, o, x},
	}
	for _, tc := range cases {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s: panic %v", tc.name, r)
				}
			}()
			res, err := tc.m.Attribute(ctx, tc.in, tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("%s: err %v (result %v), want an error naming %s", tc.name, err, res != nil, tc.field)
			}
		}()
	}
}

// A cancelled context stops every long loop within a bounded time: the
// Gauss-Legendre table at MaxSteps points (seconds of work), the path
// walk, and the sampling loops, which stop at the next model call after
// the first progress report cancels.
func TestCancelStopsLongLoops(t *testing.T) {
	x := []*tensor.Tensor{randn(1, 1, 1, 3, 32, 32)}
	o := Options{Target: Class(0)}
	for _, method := range []string{GaussLegendre, RiemannTrapezoid} {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		start := time.Now()
		_, err := (&IntegratedGradients{Net: net(t, "cnn_s0.onnx"), NSteps: MaxSteps, Method: method, InternalBatchSize: 4}).Attribute(ctx, x, o)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("IntegratedGradients %s n_steps=%d: %v, want the context's error", method, MaxSteps, err)
		}
		if d := time.Since(start); d > time.Minute { // not a speed test: without the checks it runs for minutes
			t.Errorf("IntegratedGradients %s n_steps=%d stopped %v after the start, with a deadline of 100ms", method, MaxSteps, d)
		}
	}
	nt := net(t, "cnn_s0.onnx")
	mask := []*tensor.Tensor{quadrants(32)}
	dist := []*tensor.Tensor{randn(2, 1, 3, 3, 32, 32)}
	for _, tc := range []struct {
		name string
		m    Method
		o    Options
	}{
		{"IntegratedGradients", &IntegratedGradients{Net: nt, NSteps: 1000, InternalBatchSize: 1}, o},
		{"LayerConductance", &LayerConductance{Net: nt, Layer: "relu2", NSteps: 1000, InternalBatchSize: 1}, o},
		{"GradientShap", &GradientShap{Net: nt, NSamples: MaxSamples}, Options{Target: Class(0), Baselines: dist, MemoryBudget: 1 << 20}},
		{"NoiseTunnel", &NoiseTunnel{Method: &Saliency{Net: nt}, NSamples: MaxNoiseSamples, SamplesBatchSize: 1}, o},
		{"Lime", &Lime{Model: nt, NSamples: MaxSamples, FeatureMask: mask, PerturbationsPerEval: 1}, o},
		{"KernelShap", &KernelShap{Model: nt, NSamples: MaxSamples, FeatureMask: mask, PerturbationsPerEval: 1}, o},
		{"ShapleyValueSampling", &ShapleyValueSampling{Model: nt, NSamples: MaxSamples, FeatureMask: mask, PerturbationsPerEval: 1}, o},
		{"ShapleyValues", &ShapleyValues{Model: nt, PerturbationsPerEval: 1}, Options{Target: Class(0)}},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		reports := 0
		tc.o.Progress = func(done, total int) {
			reports++
			cancel()
		}
		in := x
		if tc.name == "ShapleyValues" {
			in = []*tensor.Tensor{randn(1, 1, 1, 3, 2, 2)}
			tc.m.(*ShapleyValues).Model = Func(func(ctx context.Context, in []*tensor.Tensor) (*tensor.Tensor, error) { return sumModel(ctx, in) })
		}
		start := time.Now()
		_, err := tc.m.Attribute(ctx, in, tc.o)
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s: %v, want the context's error", tc.name, err)
		}
		if reports != 1 {
			t.Errorf("%s: %d progress reports, want it to stop after the first", tc.name, reports)
		}
		if d := time.Since(start); d > time.Minute {
			t.Errorf("%s: stopped after %v", tc.name, d)
		}
	}
}
