package methods

import (
	"math"
	"testing"

	"github.com/loupe-ml/loupe/attr"
)

// The by-name bounds the command line, Insights and the server share are
// stricter than attr's own maxima: a value Resolve lets through is never
// refused by the method it builds. Every bounded parameter is listed here,
// with attr's maximum or the reason it has none, so a new parameter cannot
// slip in unchecked.
func TestBoundsWithinAttrMaxima(t *testing.T) {
	maxima := map[string]float64{
		"n_steps":                attr.MaxSteps,
		"n_samples":              attr.MaxSamples,
		"nt_samples":             attr.MaxNoiseSamples,
		"internal_batch_size":    attr.MaxBatch,
		"perturbations_per_eval": attr.MaxBatch,
		"batch_size":             attr.MaxBatch,
		"stdevs":                 attr.MaxStdev,
		"epsilon":                attr.MaxStdev,
		"gamma":                  attr.MaxStdev,
		// attr.AblationCAM refuses a share outside [0, 1].
		"ratio_channels_to_ablate": 1,
		// Checked by internal/methods alone (attr takes masks, windows,
		// seeds and neuron indices, which have no count maximum there).
		"feature_grid":          math.Inf(1),
		"sliding_window_shapes": math.Inf(1),
		"strides":               math.Inf(1),
		"neuron":                math.Inf(1),
		"seed":                  math.Inf(1),
	}
	for name, b := range bounds {
		hi, ok := maxima[name]
		if !ok {
			t.Errorf("bound %q (%g to %g) has no entry here: add attr's maximum for it", name, b.lo, b.hi)
			continue
		}
		if !b.set {
			t.Errorf("bound %q checks only finiteness", name)
		}
		if b.hi > hi {
			t.Errorf("bound %q allows up to %g, attr accepts at most %g", name, b.hi, hi)
		}
		if b.lo < 0 {
			t.Errorf("bound %q allows %g, attr refuses negative values", name, b.lo)
		}
	}
	for name := range maxima {
		if _, ok := bounds[name]; !ok {
			t.Errorf("%q is listed here but has no bound", name)
		}
	}
}
