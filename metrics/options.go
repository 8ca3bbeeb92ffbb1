package metrics

import (
	"fmt"
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

// budgetOf returns the memory budget of o (attr.DefaultMemoryBudget for
// 0), refusing a negative one.
func budgetOf(method string, o attr.Options) (int64, error) {
	if o.MemoryBudget < 0 {
		return 0, fmt.Errorf("metrics: %s: MemoryBudget=%d: want 0 (a quarter of the machine's memory) or a number of bytes", method, o.MemoryBudget)
	}
	if o.MemoryBudget == 0 {
		return attr.DefaultMemoryBudget(), nil
	}
	return o.MemoryBudget, nil
}

// examplesPerChunk returns how many examples' k perturbed rows go into one
// chunk: MaxExamplesPerBatch's share (at least one example; all n when 0),
// capped to what limit bytes allow once held bytes are kept, at rowCost
// bytes a perturbed row. It refuses, wrapping attr.ErrMemoryBudget and
// naming n_perturb_samples, when one example's k rows do not fit.
func (mo Options) examplesPerChunk(method string, limit int64, n, k int, held, rowCost int64) (int, error) {
	per := n
	if mo.MaxExamplesPerBatch > 0 {
		per = max(1, mo.MaxExamplesPerBatch/k)
	}
	left := limit - held
	one := rowCost * int64(k)
	if rowCost > 0 && (one/rowCost != int64(k) || one > left) {
		return 0, fmt.Errorf("metrics: %s: the %d perturbed rows of one example need about %d bytes, %w (%d bytes left of Options.MemoryBudget): lower n_perturb_samples, or raise Options.MemoryBudget",
			method, k, one, attr.ErrMemoryBudget, max(left, 0))
	}
	if one > 0 {
		per = int(min(int64(per), left/one))
	}
	return max(per, 1), nil
}

// tensorBytes is the memory of the elements of the tensors.
func tensorBytes(ts []*tensor.Tensor) int64 {
	var s int64
	for _, t := range ts {
		if t == nil {
			continue
		}
		b := int64(8)
		switch t.DType {
		case tensor.Float32:
			b = 4
		case tensor.Bool:
			b = 1
		}
		s += int64(t.Len()) * b
	}
	return s
}

// rowBytes is the memory of one row of tensors of n rows (0 for none).
func rowBytes(ts []*tensor.Tensor, n int) int64 {
	return tensorBytes(ts) / int64(max(n, 1))
}

// perturbChunks splits a batch of n examples into chunks [e0, e1) of at
// most per examples each (k perturbed rows per example; see
// examplesPerChunk), draws the chunk's perturbations with perturb and rng,
// calls f with them, and reports progress after each chunk.
func (mo Options) perturbChunks(rng *rand.Rand, perturb Perturbation, inputs []*tensor.Tensor, n, k, per int, f func(e0, e1 int, pert, perturbed []*tensor.Tensor) error) error {
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
