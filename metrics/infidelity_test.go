package metrics

import (
	"math/rand/v2"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/tensor"
)

// For a linear model, input x gradient with a zero baseline explains every
// perturbation exactly: infidelity is zero.
func TestInfidelityZeroOnLinearModel(t *testing.T) {
	ctx, nt, x := onLinear(t, 1, 4)
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
