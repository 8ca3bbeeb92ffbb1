package metrics

import (
	"fmt"
	"math/rand/v2"

	"github.com/loupe-ml/loupe/tensor"
)

// Perturbation draws k perturbations of each example of a chunk of the
// batch. inputs hold the chunk's examples (first is the index of the
// chunk's first example in the whole batch). It returns, per input, the
// perturbations and the perturbed inputs, k rows per example
// (example-major: row e*k+s is example e, sample s).
type Perturbation func(rng *rand.Rand, inputs []*tensor.Tensor, first, k int) (pert, perturbed []*tensor.Tensor, err error)

// GaussianNoise perturbs every element by N(0, stdev²) and returns
// perturbed = input - noise, Captum's documented infidelity convention.
// It evaluates no model.
func GaussianNoise(stdev float64) Perturbation {
	return noise(func(rng *rand.Rand) float64 { return rng.NormFloat64() * stdev }, -1)
}

// UniformBall perturbs every element uniformly in [-radius, radius] and
// returns perturbed = input + noise: Captum's default for sensitivity_max.
// It evaluates no model.
func UniformBall(radius float64) Perturbation {
	return noise(func(rng *rand.Rand) float64 { return (2*rng.Float64() - 1) * radius }, 1)
}

// noise is the Perturbation that draws every element's perturbation with
// draw and returns perturbed = input + sign * perturbation (sign ±1).
func noise(draw func(*rand.Rand) float64, sign float32) Perturbation {
	return func(rng *rand.Rand, inputs []*tensor.Tensor, _, k int) ([]*tensor.Tensor, []*tensor.Tensor, error) {
		pert := make([]*tensor.Tensor, len(inputs))
		out := make([]*tensor.Tensor, len(inputs))
		for i, x := range inputs {
			xs := repeatRows(x.AsFloat32(), k)
			p := tensor.New(xs.Shape...)
			for e := range p.F {
				p.F[e] = float32(draw(rng))
				xs.F[e] += sign * p.F[e]
			}
			pert[i], out[i] = p, xs
		}
		return pert, out, nil
	}
}

// FromPerturbed makes a Perturbation from a function that returns only the
// perturbed inputs (Captum's infidelity_perturb_func_decorator): the
// perturbation is input - perturbed. It evaluates no model.
func FromPerturbed(f func(rng *rand.Rand, inputs []*tensor.Tensor, first, k int) ([]*tensor.Tensor, error)) Perturbation {
	return func(rng *rand.Rand, inputs []*tensor.Tensor, first, k int) ([]*tensor.Tensor, []*tensor.Tensor, error) {
		perturbed, err := f(rng, inputs, first, k)
		if err != nil {
			return nil, nil, err
		}
		if len(perturbed) != len(inputs) {
			return nil, nil, fmt.Errorf("metrics: %d perturbed tensors for %d inputs", len(perturbed), len(inputs))
		}
		pert := make([]*tensor.Tensor, len(inputs))
		for i, x := range inputs {
			xs := repeatRows(x.AsFloat32(), k)
			p := perturbed[i].AsFloat32()
			if !tensor.SameShape(p.Shape, xs.Shape) {
				return nil, nil, fmt.Errorf("metrics: perturbed input %d has shape %v, want %v", i, p.Shape, xs.Shape)
			}
			d := tensor.New(xs.Shape...)
			for e := range d.F {
				d.F[e] = xs.F[e] - p.F[e]
			}
			pert[i] = d
		}
		return pert, perturbed, nil
	}
}
