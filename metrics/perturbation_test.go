package metrics

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/tensor"
)

// A perturbation made with FromPerturbed reaches Infidelity as input minus
// perturbed: halving the input of a linear model is explained exactly by
// the gradient.
func TestFromPerturbed(t *testing.T) {
	ctx, nt, x := onLinear(t, 3, 2)
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
}

// GaussianNoise subtracts its perturbation from the input and UniformBall
// adds its own, bounded by the radius; both repeat each example k times.
func TestNoiseConventions(t *testing.T) {
	x := randn(4, 2, 3)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name   string
		p      Perturbation
		sign   float32
		radius float64
	}{{"GaussianNoise", GaussianNoise(0.5), -1, math.Inf(1)}, {"UniformBall", UniformBall(0.25), 1, 0.25}} {
		pert, perturbed, err := tc.p(rng, []*tensor.Tensor{x}, 0, 3)
		if err != nil {
			t.Fatal(err)
		}
		p, xs := pert[0], perturbed[0]
		if !tensor.SameShape(p.Shape, []int{6, 3}) || !tensor.SameShape(xs.Shape, []int{6, 3}) {
			t.Fatalf("%s: shapes %v %v, want [6 3]", tc.name, p.Shape, xs.Shape)
		}
		for e := range xs.F {
			in := x.F[(e/9)*3+e%3] // row e/3 is example e/9
			if xs.F[e] != in+tc.sign*p.F[e] || math.Abs(float64(p.F[e])) > tc.radius {
				t.Errorf("%s: element %d perturbed %g from %g by %g", tc.name, e, xs.F[e], in, p.F[e])
			}
		}
	}
}

// FromPerturbed refuses perturbed inputs of the wrong number or shape.
func TestFromPerturbedChecks(t *testing.T) {
	x := []*tensor.Tensor{randn(1, 2, 3)}
	for name, f := range map[string]func(*rand.Rand, []*tensor.Tensor, int, int) ([]*tensor.Tensor, error){
		"count": func(*rand.Rand, []*tensor.Tensor, int, int) ([]*tensor.Tensor, error) { return nil, nil },
		"shape": func(*rand.Rand, []*tensor.Tensor, int, int) ([]*tensor.Tensor, error) {
			return []*tensor.Tensor{tensor.New(2, 3)}, nil
		},
	} {
		if _, _, err := FromPerturbed(f)(nil, x, 0, 2); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
