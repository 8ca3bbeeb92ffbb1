package attr

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loupe-ml/loupe/linear"
	"github.com/loupe-ml/loupe/tensor"
)

func TestDefaultMemoryBudget(t *testing.T) {
	b := DefaultMemoryBudget()
	if b < 64<<20 || b != DefaultMemoryBudget() {
		t.Fatalf("DefaultMemoryBudget() = %d", b)
	}
	if _, err := (&IntegratedGradients{Net: net(t, "cnn_s0.onnx")}).Attribute(context.Background(),
		[]*tensor.Tensor{randn(1, 1, 1, 3, 32, 32)}, Options{Target: Class(0), MemoryBudget: -1}); err == nil || !strings.Contains(err.Error(), "MemoryBudget=-1") {
		t.Fatalf("MemoryBudget=-1: %v", err)
	}
}

// KernelShap with its defaults on one 224x224x3 image, a feature per
// scalar (150,528 features), was killed at 19 GB while building a features
// x features matrix for its least-squares fit. It must now run in little
// memory and time, and keep the efficiency its two heavy samples (all on,
// all off) enforce: the values sum to f(x) - f(baseline).
func TestKernelShapImageOneFeaturePerScalar(t *testing.T) {
	x := []*tensor.Tensor{randn(7, 1, 1, 3, 224, 224)}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	var calls []int
	res, err := (&KernelShap{Model: sumModel}).Attribute(context.Background(), x, Options{Target: Class(0), MemoryBudget: 1 << 30,
		Progress: func(done, total int) { calls = append(calls, done) }})
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<30 {
		t.Errorf("KernelShap allocated %d MB", alloc>>20)
	}
	if d := time.Since(start); d > 5*time.Minute { // bounded, not a speed test
		t.Errorf("KernelShap took %v", d)
	}
	var sum, want float64
	for e, v := range res.Attributions[0].F {
		sum += float64(v)
		want += float64(x[0].F[e])
	}
	if math.Abs(sum-want) > 1e-3*math.Max(1, math.Abs(want)) {
		t.Errorf("attributions sum to %g, want f(x) - f(0) = %g", sum, want)
	}
	if len(calls) == 0 || calls[len(calls)-1] != 25 {
		t.Errorf("progress %v, want it to end at the 25 samples", calls)
	}
}

// What would not fit even split is refused at once, before any model
// call, naming the parameters to change.
func TestBudgetRefusesAtOnce(t *testing.T) {
	ctx := context.Background()
	img := []*tensor.Tensor{randn(7, 1, 1, 3, 224, 224)}
	var calls atomic.Int64
	model := countSum(&calls)
	for _, tc := range []struct {
		name string
		m    Method
		in   []*tensor.Tensor
		o    Options
		want []string
	}{
		// 100,000 samples x 150,528 features: a 120 GB design matrix.
		{"Lime n_samples=1e5", &Lime{Model: model, NSamples: MaxSamples}, img, Options{Target: Class(0)}, []string{"n_samples=100000", "feature_mask"}},
		{"KernelShap n_samples=1e5", &KernelShap{Model: model, NSamples: MaxSamples}, img, Options{Target: Class(0)}, []string{"n_samples", "feature_mask"}},
		{"Lime Ridge", &Lime{Model: model, Interpretable: linear.Ridge{Alpha: 1}}, img, Options{Target: Class(0)}, []string{"feature_mask"}},
		{"IntegratedGradients", &IntegratedGradients{Net: net(t, "cnn_s0.onnx")}, []*tensor.Tensor{randn(1, 1, 4, 3, 32, 32)},
			Options{Target: Class(0), MemoryBudget: 1 << 20}, []string{"one step for a batch of 4 example(s)", "fewer examples"}},
		{"GradientShap", &GradientShap{Net: net(t, "cnn_s0.onnx")}, []*tensor.Tensor{randn(1, 1, 4, 3, 32, 32)},
			Options{Target: Class(0), MemoryBudget: 1 << 18, Baselines: []*tensor.Tensor{tensor.Scalar(0)}}, []string{"one draw"}},
		{"ShapleyValueSampling", &ShapleyValueSampling{Model: model}, img, Options{Target: Class(0), MemoryBudget: 1 << 20}, []string{"ShapleyValueSampling"}},
	} {
		calls.Store(0)
		start := time.Now()
		_, err := tc.m.Attribute(ctx, tc.in, tc.o)
		if !errors.Is(err, ErrMemoryBudget) {
			t.Errorf("%s: %v, want a memory budget error", tc.name, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v, want it to mention %q", tc.name, err, w)
			}
		}
		if c := calls.Load(); c != 0 {
			t.Errorf("%s: %d model calls before the refusal", tc.name, c)
		}
		if d := time.Since(start); d > time.Minute { // a refusal comes before any long work
			t.Errorf("%s: refused after %v", tc.name, d)
		}
	}
}

// A small budget splits the expanded batches into more model calls and
// changes nothing else: the same draws, the same answers.
func TestBudgetSplitsWithoutChangingResults(t *testing.T) {
	ctx := context.Background()
	nt := net(t, "cnn_s0.onnx")
	x := []*tensor.Tensor{randn(3, 1, 2, 3, 32, 32)}
	o := Options{Target: Classes(1, 7)}
	ob := o
	ob.Baselines = []*tensor.Tensor{randn(4, 1, 3, 3, 32, 32)}
	var calls atomic.Int64
	const mb = 1 << 20
	for _, tc := range []struct {
		name   string
		m      Method
		o      Options
		budget int64
	}{
		{"IntegratedGradients", &IntegratedGradients{Net: nt, NSteps: 20}, o, 3 * mb},
		{"LayerConductance", &LayerConductance{Net: nt, Layer: "relu2", NSteps: 10}, o, 3 * mb},
		{"GradientShap", &GradientShap{Net: nt, NSamples: 12, Stdevs: []float64{0.1}, Seed: 3}, ob, 3 * mb},
		// The inner IG refuses the tunnel's first chunk, which halves it.
		{"NoiseTunnel(IG)", &NoiseTunnel{Method: &IntegratedGradients{Net: nt, NSteps: 6}, NSamples: 6, Stdevs: []float64{0.2}, Seed: 5}, o, 3 * mb},
		{"NoiseTunnel(Saliency)", &NoiseTunnel{Method: &Saliency{Net: nt}, NSamples: 7, Stdevs: []float64{0.2}, Seed: 5, Type: VarGrad}, o, mb / 10},
		{"ShapleyValueSampling", &ShapleyValueSampling{Model: nt, NSamples: 3, FeatureMask: []*tensor.Tensor{quadrants(32)}, Seed: 2}, o, mb / 2},
		{"Lime", &Lime{Model: countSum(&calls), NSamples: 30, FeatureMask: []*tensor.Tensor{quadrants(32)}, Seed: 2}, Options{Target: Class(0)}, mb / 10},
	} {
		full := tc.o
		var bigCalls, smallCalls int
		full.Progress = func(int, int) { bigCalls++ }
		want, err := tc.m.Attribute(ctx, x, full)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		small := tc.o
		small.MemoryBudget = tc.budget
		small.Progress = func(int, int) { smallCalls++ }
		got, err := tc.m.Attribute(ctx, x, small)
		if err != nil {
			t.Fatalf("%s with a budget of %d bytes: %v", tc.name, tc.budget, err)
		}
		if smallCalls <= bigCalls {
			t.Errorf("%s: %d progress reports with a budget of %d bytes, %d without: no split", tc.name, smallCalls, tc.budget, bigCalls)
		}
		for i := range want.Attributions {
			for e, w := range want.Attributions[i].F {
				if g := got.Attributions[i].F[e]; math.Abs(float64(g-w)) > 1e-5*math.Max(1, math.Abs(float64(w))) {
					t.Fatalf("%s element %d: %g with a budget of %d bytes, %g without", tc.name, e, g, tc.budget, w)
				}
			}
		}
	}
}

// quadrants is a feature mask [1, 1, s, s] of four features.
func quadrants(s int) *tensor.Tensor {
	m := tensor.NewInt(1, 1, s, s)
	for i := range s {
		for j := range s {
			m.I[i*s+j] = int64(2*(i*2/s) + j*2/s)
		}
	}
	return m
}

// The Gram-matrix route gives the minimum-norm least-squares answer:
// linear.LeastSquares' on a system of full row rank; with an intercept,
// whose centering makes the system exactly rank deficient, a solution
// that interpolates the samples with no larger a norm (the SVD of the
// centered matrix keeps a singular value of 1e-13, rounding noise, that
// the Gram matrix's square drops).
func TestWideLeastSquares(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, intercept := range []bool{false, true} {
		n, d := 9, 31
		X := make([][]float64, n)
		y := make([]float64, n)
		w := make([]float64, n)
		for i := range X {
			X[i] = make([]float64, d)
			for j := range X[i] {
				X[i][j] = float64(rng.IntN(2))
			}
			y[i] = rng.NormFloat64()
			w[i] = 0.1 + rng.Float64()
		}
		w[0] = 1e6
		want, err := linear.LeastSquares{FitIntercept: intercept}.Fit(X, y, w)
		if err != nil {
			t.Fatal(err)
		}
		got, err := wideLeastSquares{FitIntercept: intercept}.Fit(X, y, w)
		if err != nil {
			t.Fatal(err)
		}
		if !intercept {
			for j := range want.Weights {
				if math.Abs(got.Weights[j]-want.Weights[j]) > 1e-7*math.Max(1, math.Abs(want.Weights[j])) {
					t.Fatalf("weight %d: %g, want %g", j, got.Weights[j], want.Weights[j])
				}
			}
			continue
		}
		for i := range X {
			if p := got.Predict(X[i]); math.Abs(p-y[i]) > 1e-8 {
				t.Errorf("sample %d: predicted %g, want %g", i, p, y[i])
			}
		}
		norm := func(b []float64) (s float64) {
			for _, v := range b {
				s += v * v
			}
			return math.Sqrt(s)
		}
		if g, w := norm(got.Weights), norm(want.Weights); g > w*(1+1e-9) {
			t.Errorf("norm %g, linear.LeastSquares' %g", g, w)
		}
	}
}

// The dry run's estimate of a row covers at least the input and every
// activation of a recorded pass.
func TestModelRowBytes(t *testing.T) {
	ctx := context.Background()
	nt := net(t, "cnn_s0.onnx")
	x := []*tensor.Tensor{randn(1, 1, 3, 3, 32, 32)}
	fwd, err := modelRowBytes(ctx, nt, x, nil, 3, false)
	if err != nil {
		t.Fatal(err)
	}
	grad, err := modelRowBytes(ctx, nt, x, nil, 3, true)
	if err != nil {
		t.Fatal(err)
	}
	if fwd <= 3*32*32*4 || grad != 3*fwd {
		t.Fatalf("row estimates: forward %d, with gradients %d", fwd, grad)
	}
	if f, _ := modelRowBytes(ctx, sumModel, x, nil, 3, false); f <= 0 || f > 1024 {
		t.Fatalf("a Func's row: %d", f)
	}
}

// countSum is sumModel counting its calls.
func countSum(calls *atomic.Int64) Func {
	return func(ctx context.Context, in []*tensor.Tensor) (*tensor.Tensor, error) {
		calls.Add(1)
		return sumModel(ctx, in)
	}
}

// A method refuses at once what would not fit its memory budget even
// split, and says which parameter to change.
func ExampleOptions_memoryBudget() {
	// One 224x224 RGB image, every scalar a feature (150,528 of them).
	img := tensor.New(1, 3, 224, 224)
	model := Func(func(_ context.Context, in []*tensor.Tensor) (*tensor.Tensor, error) {
		return tensor.New(in[0].Shape[0], 1), nil
	})
	lime := &Lime{Model: model, NSamples: 10000}
	_, err := lime.Attribute(context.Background(), []*tensor.Tensor{img}, Options{Target: Class(0), MemoryBudget: 1 << 30})
	fmt.Println(errors.Is(err, ErrMemoryBudget))
	fmt.Println(err)
	// Output:
	// true
	// attr: Lime: the design matrix of n_samples=10000 samples by 150528 features and its fit needs 48.2 GB, over the memory budget of 1.07 GB (Options.MemoryBudget): lower n_samples, or group the features with a coarser feature_mask, or raise Options.MemoryBudget
}
