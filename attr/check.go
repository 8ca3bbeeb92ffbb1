package attr

import (
	"fmt"
	"math"
)

// The largest values the count parameters of the methods accept (0 means
// the method's default everywhere; negative counts are refused). They keep
// one call's work and memory finite whatever a caller passes. The command
// line, Insights and the server go through internal/methods' bounds, which
// are stricter (n_steps and n_samples 1 to 1000, nt_samples 1 to 500,
// batch sizes 0 to 1000, stdevs 0 to 1e6) and must stay within these; a
// library caller may ask for more, e.g. many samples for a statistical
// check.
const (
	// MaxSteps bounds NSteps, the integration points of the path methods.
	MaxSteps = 100_000
	// MaxSamples bounds NSamples of GradientShap, Lime, KernelShap,
	// LimeBase, ShapleyValueSampling and their layer and neuron forms.
	MaxSamples = 100_000
	// MaxNoiseSamples bounds NoiseTunnel's NSamples (nt_samples).
	MaxNoiseSamples = 100_000
	// MaxBatch bounds InternalBatchSize, PerturbationsPerEval,
	// SamplesBatchSize and BatchSize, the rows of one model call.
	MaxBatch = 1 << 16
	// MaxExactFeatures bounds ShapleyValues' MaxFeatures (2^20
	// coalitions).
	MaxExactFeatures = 20
	// MaxStdev bounds the noise's standard deviations (Stdevs), and LRP
	// rules' Epsilon and Gamma.
	MaxStdev = 1e6
)

// checkCount refuses a count parameter below 0 or above hi, naming the
// method, the field and the value.
func checkCount(method, field string, v, hi int) error {
	if v < 0 || v > hi {
		return fmt.Errorf("attr: %s: %s=%d: want 0 (the default) to %d", method, field, v, hi)
	}
	return nil
}

// checkFloat refuses a NaN or infinite parameter, or one outside [lo, hi].
func checkFloat(method, field string, v, lo, hi float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < lo || v > hi {
		return fmt.Errorf("attr: %s: %s=%g: want a finite number from %g to %g", method, field, v, lo, hi)
	}
	return nil
}

// checkStdevs refuses standard deviations that are NaN, infinite, negative
// or above MaxStdev.
func checkStdevs(method string, stdevs []float64) error {
	for _, s := range stdevs {
		if err := checkFloat(method, "Stdevs", s, 0, MaxStdev); err != nil {
			return err
		}
	}
	return nil
}
