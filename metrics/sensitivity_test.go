package metrics

import (
	"math"
	"testing"

	"github.com/loupe-ml/loupe/attr"
)

// The gradient of a linear model does not depend on the input.
func TestSensitivityZeroForSaliencyOfLinearModel(t *testing.T) {
	ctx, nt, x := onLinear(t, 2, 3)
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

// The infinity norm gives another sensitivity than the Frobenius norm, and
// other norms are refused.
func TestSensitivityNorms(t *testing.T) {
	ctx, nt, x := onLinear(t, 3, 2)
	o := attr.Options{Target: attr.Class(0)}
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
