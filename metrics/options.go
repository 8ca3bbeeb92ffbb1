package metrics

import (
	"math/rand/v2"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/tensor"
)

// Options are the common settings of Infidelity and SensitivityMax.
type Options struct {
	// NPerturbSamples is the number of perturbations per example; 0 means 10.
	NPerturbSamples int
	// MaxExamplesPerBatch bounds the perturbed rows evaluated at once
	// (0: all at once).
	MaxExamplesPerBatch int
	// Seed seeds the perturbations.
	Seed uint64
	// Progress, if set, is called with the examples done.
	Progress attr.Progress
	// NormOrd is the norm of SensitivityMax: 0 or 2 the Frobenius norm
	// (Captum's "fro"), math.Inf(1) the largest absolute difference.
	NormOrd float64
}

// samples returns the number of perturbations per example.
func (mo Options) samples() int {
	if mo.NPerturbSamples == 0 {
		return 10
	}
	return mo.NPerturbSamples
}

// perturbChunks splits a batch of n examples into chunks [e0, e1) of at
// most MaxExamplesPerBatch perturbed rows each (k per example, at least one
// example a chunk), draws the chunk's perturbations with perturb and rng,
// calls f with them, and reports progress after each chunk.
func (mo Options) perturbChunks(rng *rand.Rand, perturb Perturbation, inputs []*tensor.Tensor, n, k int, f func(e0, e1 int, pert, perturbed []*tensor.Tensor) error) error {
	per := n
	if mo.MaxExamplesPerBatch > 0 {
		per = max(1, mo.MaxExamplesPerBatch/k)
	}
	for e0 := 0; e0 < n; e0 += per {
		e1 := min(n, e0+per)
		pert, perturbed, err := perturb(rng, rowsOf(inputs, e0, e1), e0, k)
		if err != nil {
			return err
		}
		if err := f(e0, e1, pert, perturbed); err != nil {
			return err
		}
		if mo.Progress != nil {
			mo.Progress(e1, n)
		}
	}
	return nil
}
