package attr

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/internal/testmodels"
	"github.com/loupe-ml/loupe/tensor"
)

var modelDir = testmodels.Dir()

func net(t testing.TB, name string, extra ...string) *Net {
	t.Helper()
	m, err := engine.Load(filepath.Join(modelDir, name))
	if err != nil {
		t.Fatal(err)
	}
	n, err := NewNet(m, extra...)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func randn(seed uint64, scale float64, shape ...int) *tensor.Tensor {
	rng := rand.New(rand.NewPCG(seed, 5))
	x := tensor.New(shape...)
	for i := range x.F {
		x.F[i] = float32(rng.NormFloat64() * scale)
	}
	return x
}

// sums returns sum(attributions) per example and F(x)-F(b) at the target.
func gap(t *testing.T, nt *Net, inputs, base []*tensor.Tensor, o Options) []float64 {
	t.Helper()
	n := inputs[0].Shape[0]
	fx, err := targetValues(context.Background(), nt, inputs, o, n)
	if err != nil {
		t.Fatal(err)
	}
	full, err := baselinesFor(base, inputs)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := targetValues(context.Background(), nt, full, o, n)
	if err != nil {
		t.Fatal(err)
	}
	g := make([]float64, n)
	for i := range g {
		g[i] = float64(fx[i] - fb[i])
	}
	return g
}

func TestCompleteness(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		model  string
		inputs []*tensor.Tensor
		target Target
		tol    float64
		// Captum's DeepLift is complete only without ReLU -> MaxPool.
		captumDL float64
	}{
		{"mlp", "mlp_s0.onnx", []*tensor.Tensor{randn(1, 1, 3, 6)}, Classes(0, 2, 3), 1e-3, 1e-4},
		{"cnn", "cnn_s0.onnx", []*tensor.Tensor{randn(2, 1, 2, 3, 32, 32)}, Class(4), 2e-2, 1},
		{"multimodal", "multimodal_s0.onnx", []*tensor.Tensor{randn(3, 1, 2, 1, 8, 8), randn(4, 1, 2, 5)}, Class(1), 1e-2, 1},
	}
	for _, tc := range tests {
		nt := net(t, tc.model)
		base := make([]*tensor.Tensor, len(tc.inputs))
		for i, x := range tc.inputs {
			base[i] = randn(9+uint64(i), 0.1, x.Shape...)
		}
		o := Options{Target: tc.target, Baselines: base, Delta: true}
		want := gap(t, nt, tc.inputs, base, o)
		ig := &IntegratedGradients{Net: nt, NSteps: 200}
		dl := &DeepLift{Net: nt, Strict: true}
		for _, m := range []struct {
			name string
			meth Method
			tol  float64
		}{{"IntegratedGradients", ig, tc.tol}, {"DeepLift strict", dl, 1e-4}, {"DeepLift", &DeepLift{Net: nt}, tc.captumDL}} {
			r, err := m.meth.Attribute(ctx, tc.inputs, o)
			if err != nil {
				t.Fatalf("%s %s: %v", tc.name, m.name, err)
			}
			for e := range want {
				s := float64(rowSum(r.Attributions, e, len(want)))
				if math.Abs(s-want[e]) > m.tol*math.Max(1, math.Abs(want[e])) {
					t.Errorf("%s %s example %d: attributions sum to %g, F(x)-F(b) = %g", tc.name, m.name, e, s, want[e])
				}
				if d := float64(r.Delta.F[e]); math.Abs(d-(s-want[e])) > 1e-4*math.Max(1, math.Abs(want[e])) {
					t.Errorf("%s %s example %d: delta %g, want %g", tc.name, m.name, e, d, s-want[e])
				}
			}
		}
	}
}

func TestNoiseTunnelZeroNoise(t *testing.T) {
	ctx := context.Background()
	nt := net(t, "cnn_s0.onnx")
	x := []*tensor.Tensor{randn(5, 1, 2, 3, 32, 32)}
	o := Options{Target: Classes(1, 7)}
	for _, inner := range []Method{&Saliency{Net: nt}, &IntegratedGradients{Net: nt, NSteps: 8}, &GuidedBackprop{Net: nt}} {
		want, err := inner.Attribute(ctx, x, o)
		if err != nil {
			t.Fatal(err)
		}
		for _, typ := range []string{SmoothGrad, SmoothGradSq, VarGrad} {
			tun := &NoiseTunnel{Method: inner, Type: typ, NSamples: 3, Stdevs: []float64{0}, SamplesBatchSize: 2}
			got, err := tun.Attribute(ctx, x, o)
			if err != nil {
				t.Fatal(err)
			}
			for e, w := range want.Attributions[0].F {
				var exp float64
				switch typ {
				case SmoothGrad:
					exp = float64(w)
				case SmoothGradSq:
					exp = float64(w) * float64(w)
				}
				if g := float64(got.Attributions[0].F[e]); math.Abs(g-exp) > 1e-5*math.Max(1, math.Abs(exp)) {
					t.Fatalf("%T %s element %d: %g, want %g", inner, typ, e, g, exp)
				}
			}
		}
	}
}

// TestExtraInputs checks that additional inputs reach the model: the
// masked model ignores masked features, so they get no attribution.
func TestExtraInputs(t *testing.T) {
	ctx := context.Background()
	nt := net(t, "masked_s0.onnx", "mask")
	x := []*tensor.Tensor{randn(6, 1, 3, 6)}
	mask := tensor.New(3, 6)
	for i := range mask.F {
		if i%3 != 0 {
			mask.F[i] = 1
		}
	}
	o := Options{Target: Class(1), Additional: []*tensor.Tensor{mask}}
	methods := map[string]Method{
		"Saliency":            &Saliency{Net: nt},
		"InputXGradient":      &InputXGradient{Net: nt},
		"IntegratedGradients": &IntegratedGradients{Net: nt, NSteps: 10, InternalBatchSize: 7},
		"DeepLift":            &DeepLift{Net: nt},
		"GuidedBackprop":      &GuidedBackprop{Net: nt},
		"LRP":                 &LRP{Net: nt},
		"NoiseTunnel":         &NoiseTunnel{Method: &Saliency{Net: nt}, NSamples: 4, Stdevs: []float64{0.1}},
		"GradientShap":        nil,
	}
	for name, m := range methods {
		oo := o
		if m == nil {
			m = &GradientShap{Net: nt, NSamples: 4}
			oo.Baselines = []*tensor.Tensor{randn(1, 0.1, 5, 6)}
		}
		r, err := m.Attribute(ctx, x, oo)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		nonzero := false
		for i, v := range r.Attributions[0].F {
			if mask.F[i] == 0 && v != 0 {
				t.Errorf("%s: masked feature %d has attribution %g", name, i, v)
			}
			if v != 0 {
				nonzero = true
			}
		}
		if !nonzero {
			t.Errorf("%s: all attributions are zero", name)
		}
	}
}

func TestBadInput(t *testing.T) {
	ctx := context.Background()
	nt := net(t, "mlp_s0.onnx")
	x := []*tensor.Tensor{randn(1, 1, 2, 6)}
	tests := []struct {
		name string
		m    Method
		in   []*tensor.Tensor
		o    Options
	}{
		{"target out of range", &Saliency{Net: nt}, x, Options{Target: Class(4)}},
		{"targets per example", &Saliency{Net: nt}, x, Options{Target: Classes(1, 2, 3)}},
		{"no target", &Saliency{Net: nt}, x, Options{}},
		{"two inputs", &Saliency{Net: nt}, []*tensor.Tensor{x[0], x[0]}, Options{Target: Class(0)}},
		{"baseline shape", &IntegratedGradients{Net: nt}, x, Options{Target: Class(0), Baselines: []*tensor.Tensor{tensor.New(2, 5)}}},
		{"method", &IntegratedGradients{Net: nt, Method: "simpson"}, x, Options{Target: Class(0)}},
		{"input shape", &Saliency{Net: nt}, []*tensor.Tensor{tensor.New(2, 7)}, Options{Target: Class(0)}},
	}
	for _, tc := range tests {
		if _, err := tc.m.Attribute(ctx, tc.in, tc.o); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func TestGaussLegendre(t *testing.T) {
	// Known nodes and weights for n = 3: 0, ±sqrt(3/5); 8/9, 5/9.
	x, w := gaussLegendre(3)
	want := []float64{-math.Sqrt(0.6), 0, math.Sqrt(0.6)}
	wantW := []float64{5.0 / 9, 8.0 / 9, 5.0 / 9}
	for i := range x {
		if math.Abs(x[i]-want[i]) > 1e-15 || math.Abs(w[i]-wantW[i]) > 1e-15 {
			t.Fatalf("n=3: nodes %v weights %v", x, w)
		}
	}
	// Exact for polynomials of degree 2n-1 on [0,1].
	for _, n := range []int{1, 2, 5, 50, 101} {
		steps, alphas, err := stepsAndAlphas(GaussLegendre, n)
		if err != nil {
			t.Fatal(err)
		}
		var s, sw float64
		for i := range steps {
			s += steps[i] * math.Pow(alphas[i], float64(2*n-1))
			sw += steps[i]
		}
		if math.Abs(s-1/float64(2*n)) > 1e-12 || math.Abs(sw-1) > 1e-12 {
			t.Errorf("n=%d: integral of a^(2n-1) = %g, want %g; weights sum to %g", n, s, 1/float64(2*n), sw)
		}
	}
}

// A method without a Net reports it instead of panicking.
func TestNoNet(t *testing.T) {
	ctx := context.Background()
	x := []*tensor.Tensor{randn(1, 1, 2, 6)}
	for _, m := range []Method{&Saliency{}, &IntegratedGradients{}, &DeepLift{}, &LRP{}, &FeatureAblation{}, &Occlusion{SlidingWindowShapes: [][]int{{1}}},
		&LayerGradCam{}, &LayerConductance{Layer: "x"}, &NeuronGradient{Neuron: Neuron{Layer: "x", Index: []int{0}}}, &ShapleyValueSampling{}, &Lime{}, &NoiseTunnel{Method: &Saliency{}}} {
		if _, err := m.Attribute(ctx, x, Options{Target: Class(0)}); err == nil {
			t.Errorf("%T without a Net: no error", m)
		}
	}
}
