package metrics

import "github.com/loupe-ml/loupe/attr"

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

// eachChunk calls f on consecutive chunks [e0, e1) of a batch of n
// examples, each with at most MaxExamplesPerBatch perturbed rows (k per
// example, and at least one example), and reports progress after each.
func (mo Options) eachChunk(n, k int, f func(e0, e1 int) error) error {
	per := n
	if mo.MaxExamplesPerBatch > 0 {
		per = max(1, mo.MaxExamplesPerBatch/k)
	}
	for e0 := 0; e0 < n; e0 += per {
		e1 := min(n, e0+per)
		if err := f(e0, e1); err != nil {
			return err
		}
		if mo.Progress != nil {
			mo.Progress(e1, n)
		}
	}
	return nil
}
