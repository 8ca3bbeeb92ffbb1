package metrics

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/internal/testmodels"
	"github.com/loupe-ml/loupe/tensor"
)

func linearNet(t *testing.T) *attr.Net {
	m, err := engine.Load(testmodels.Path("linear_s0.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	nt, err := attr.NewNet(m)
	if err != nil {
		t.Fatal(err)
	}
	return nt
}

func randn(seed uint64, shape ...int) *tensor.Tensor {
	r := rand.New(rand.NewPCG(seed, 1))
	x := tensor.New(shape...)
	for i := range x.F {
		x.F[i] = float32(r.NormFloat64())
	}
	return x
}

// For a linear model, input x gradient with a zero baseline explains every
// perturbation exactly: infidelity is zero.
func TestInfidelityZeroOnLinearModel(t *testing.T) {
	ctx := context.Background()
	nt := linearNet(t)
	x := []*tensor.Tensor{randn(1, 4, 6)}
	o := attr.Options{Target: attr.Classes(0, 1, 2, 1)}
	a, err := (&attr.InputXGradient{Net: nt}).Attribute(ctx, x, o)
	if err != nil {
		t.Fatal(err)
	}
	// Perturbing by the whole input (perturbed = 0) makes sum(attr*I) the
	// full f(x) - f(0) for input x gradient; random perturbations likewise
	// give gradient·I.
	grad, _ := (&attr.Saliency{Net: nt, Signed: true}).Attribute(ctx, x, o)
	for _, tc := range []struct {
		name  string
		attrs []*tensor.Tensor
	}{{"gradient", grad.Attributions}} {
		v, err := Infidelity(ctx, nt, GaussianNoise(0.3), x, tc.attrs, o, false, Options{NPerturbSamples: 20, MaxExamplesPerBatch: 10})
		if err != nil {
			t.Fatal(err)
		}
		for e, f := range v.F {
			if f > 1e-9 {
				t.Errorf("%s: infidelity of example %d is %g, want 0", tc.name, e, f)
			}
		}
	}
	// Input x gradient is exact for removal perturbations: I is a random
	// 0/1 mask and the perturbed input x - x*I (features set to the zero
	// baseline), since f(x) - f(x - x*I) = sum(x * grad * I).
	prop := func(r *rand.Rand, in []*tensor.Tensor, _, k int) ([]*tensor.Tensor, []*tensor.Tensor, error) {
		xs := repeatRows(in[0], k)
		mask := tensor.New(xs.Shape...)
		for i := range mask.F {
			if r.IntN(2) == 1 {
				mask.F[i] = 1
				xs.F[i] = 0
			}
		}
		return []*tensor.Tensor{mask}, []*tensor.Tensor{xs}, nil
	}
	v, err := Infidelity(ctx, nt, prop, x, a.Attributions, o, false, Options{NPerturbSamples: 8})
	if err != nil {
		t.Fatal(err)
	}
	for e, f := range v.F {
		if f > 1e-9 {
			t.Errorf("input x gradient: infidelity of example %d is %g, want 0", e, f)
		}
	}
	// A wrong explanation is penalized.
	bad := []*tensor.Tensor{randn(9, 4, 6)}
	v, _ = Infidelity(ctx, nt, GaussianNoise(0.3), x, bad, o, false, Options{})
	if v.F[0] < 1e-3 {
		t.Errorf("random attributions have infidelity %g, want clearly positive", v.F[0])
	}
}

// The gradient of a linear model does not depend on the input.
func TestSensitivityZeroForSaliencyOfLinearModel(t *testing.T) {
	ctx := context.Background()
	nt := linearNet(t)
	x := []*tensor.Tensor{randn(2, 3, 6)}
	v, err := SensitivityMax(ctx, &attr.Saliency{Net: nt, Signed: true}, nil, x, attr.Options{Target: attr.Class(2)}, Options{NPerturbSamples: 5, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	for e, f := range v.F {
		if f != 0 {
			t.Errorf("example %d: sensitivity %g, want 0", e, f)
		}
	}
	// Input x gradient does change with the input.
	v, _ = SensitivityMax(ctx, &attr.InputXGradient{Net: nt}, UniformBall(0.5), x, attr.Options{Target: attr.Class(2)}, Options{NPerturbSamples: 5})
	if v.F[0] <= 0 {
		t.Errorf("input x gradient sensitivity %g, want positive", v.F[0])
	}
}

func TestFromPerturbedAndNorms(t *testing.T) {
	ctx := context.Background()
	nt := linearNet(t)
	x := []*tensor.Tensor{randn(3, 2, 6)}
	o := attr.Options{Target: attr.Class(0)}
	grad, _ := (&attr.Saliency{Net: nt, Signed: true}).Attribute(ctx, x, o)
	half := FromPerturbed(func(_ *rand.Rand, in []*tensor.Tensor, _, k int) ([]*tensor.Tensor, error) {
		p := repeatRows(in[0], k)
		for i := range p.F {
			p.F[i] *= 0.5
		}
		return []*tensor.Tensor{p}, nil
	})
	v, err := Infidelity(ctx, nt, half, x, grad.Attributions, o, false, Options{NPerturbSamples: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range v.F {
		if f > 1e-9 {
			t.Errorf("infidelity through FromPerturbed %g, want 0", f)
		}
	}
	s2, _ := SensitivityMax(ctx, &attr.InputXGradient{Net: nt}, UniformBall(0.1), x, o, Options{NPerturbSamples: 4, Seed: 1})
	si, err := SensitivityMax(ctx, &attr.InputXGradient{Net: nt}, UniformBall(0.1), x, o, Options{NPerturbSamples: 4, Seed: 1, NormOrd: math.Inf(1)})
	if err != nil {
		t.Fatal(err)
	}
	if si.F[0] <= 0 || si.F[0] == s2.F[0] {
		t.Errorf("infinity-norm sensitivity %g, Frobenius %g: want a different positive value", si.F[0], s2.F[0])
	}
	if _, err := SensitivityMax(ctx, &attr.InputXGradient{Net: nt}, nil, x, o, Options{NormOrd: 3}); err == nil {
		t.Error("norm order 3: no error")
	}
}
