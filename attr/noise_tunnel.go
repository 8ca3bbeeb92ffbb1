package attr

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/loupe-ml/loupe/tensor"
)

// NoiseTunnel types, with Captum's names.
const (
	SmoothGrad   = "smoothgrad"
	SmoothGradSq = "smoothgrad_sq"
	VarGrad      = "vargrad"
)

// NoiseTunnel runs a method on noisy copies of each input (Gaussian noise)
// and aggregates the attributions: their mean (SmoothGrad, Smilkov et al.
// 2017), the mean of their squares (SmoothGrad²) or their variance
// (VarGrad, Adebayo et al. 2018). Cost: NSamples times the inner method's,
// in batches of SamplesBatchSize noisy copies per example.
type NoiseTunnel struct {
	Method Method
	// Type is SmoothGrad (the default when empty), SmoothGradSq or VarGrad.
	Type string
	// NSamples is the number of noisy copies per example; 0 means 5, at
	// most MaxNoiseSamples.
	NSamples int
	// SamplesBatchSize bounds the copies per example run at once; 0
	// chooses calls of about 1M input elements (the results are the same).
	SamplesBatchSize int
	// Stdevs is the noise's standard deviation, one per input or one for
	// all; nil means 1.0, as Captum.
	Stdevs []float64
	// DrawBaselineFromDistrib draws each noisy copy's baseline at random
	// from the rows of Options.Baselines.
	DrawBaselineFromDistrib bool
	// Seed seeds the noise; runs with the same seed are identical.
	Seed uint64
	// Noisy, when set, replaces the random draws: one tensor per input of
	// NSamples rows per example, example-major (row b*NSamples+s), as
	// Captum's repeat_interleave order. Used to replay recorded draws.
	Noisy []*tensor.Tensor
}

// Attribute runs the tunnel. With o.Delta, the delta of the inner method
// is returned for every noisy row (example-major).
func (nt *NoiseTunnel) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	n, err := batchOf(inputs)
	if err != nil {
		return nil, err
	}
	if err := checkCount("NoiseTunnel", "NSamples", nt.NSamples, MaxNoiseSamples); err != nil {
		return nil, err
	}
	if err := checkCount("NoiseTunnel", "SamplesBatchSize", nt.SamplesBatchSize, MaxBatch); err != nil {
		return nil, err
	}
	if err := checkStdevs("NoiseTunnel", nt.Stdevs); err != nil {
		return nil, err
	}
	k := cmp.Or(nt.NSamples, 5)
	switch nt.Type {
	case "", SmoothGrad, SmoothGradSq, VarGrad:
	default:
		return nil, fmt.Errorf("attr: unknown NoiseTunnel type %q (want smoothgrad, smoothgrad_sq or vargrad)", nt.Type)
	}
	rng := rand.New(rand.NewPCG(nt.Seed, 0x6e6f697365))
	noisy, err := nt.noisy(rng, inputs, n, k)
	if err != nil {
		return nil, err
	}
	inner := nt.innerOptions(rng, o, n, k)
	per := k
	if nt.SamplesBatchSize > 0 {
		per = min(k, nt.SamplesBatchSize)
	} else {
		// Bound each inner call as stepsPerCall does (about 2^20 input elements).
		per = stepsPerCall(0, 1, k, inputs)
	}
	sum, sq := zerosLike(inputs, false), zerosLike(inputs, false)
	var delta *tensor.Tensor
	if o.Delta {
		delta = tensor.New(n * k)
	}
	for s0, s1 := range chunks(k, per) {
		// The rows of copies s0..s1-1 of every example.
		rows := make([]int, 0, n*(s1-s0))
		for b := 0; b < n; b++ {
			for s := s0; s < s1; s++ {
				rows = append(rows, b*k+s)
			}
		}
		chunk := func(ts []*tensor.Tensor) []*tensor.Tensor {
			if len(rows) == n*k {
				return ts
			}
			return selectRows(ts, n*k, rows)
		}
		call := inner
		call.Additional = chunk(inner.Additional)
		call.Baselines = chunk(inner.Baselines)
		call.Target = inner.Target.rows(rows)
		r, err := nt.Method.Attribute(ctx, chunk(noisy), call)
		if err != nil {
			return nil, err
		}
		for i, at := range r.Attributions {
			row := at.Len() / len(rows)
			for j, src := range rows {
				b := src / k
				a := at.F[j*row : (j+1)*row]
				s := sum[i].F[b*row : (b+1)*row]
				q := sq[i].F[b*row : (b+1)*row]
				for e, v := range a {
					s[e] += v
					q[e] += v * v
				}
			}
		}
		if o.Delta {
			if r.Delta == nil {
				return nil, fmt.Errorf("attr: NoiseTunnel: the inner method returned no delta")
			}
			for j, src := range rows {
				delta.F[src] = r.Delta.F[j]
			}
		}
		if o.Progress != nil {
			o.Progress(n*s1, n*k)
		}
	}
	res := &Result{Attributions: make([]*tensor.Tensor, len(inputs)), Delta: delta}
	for i := range inputs {
		out := tensor.New(inputs[i].Shape...)
		for e := range out.F {
			mean := sum[i].F[e] / float32(k)
			meanSq := sq[i].F[e] / float32(k)
			switch nt.Type {
			case SmoothGradSq:
				out.F[e] = meanSq
			case VarGrad:
				out.F[e] = meanSq - mean*mean
			default:
				out.F[e] = mean
			}
		}
		res.Attributions[i] = out
	}
	return res, nil
}

// noisy returns k noisy copies of every example, example-major (row
// b*k+s), drawn from rng or replayed from nt.Noisy.
func (nt *NoiseTunnel) noisy(rng *rand.Rand, inputs []*tensor.Tensor, n, k int) ([]*tensor.Tensor, error) {
	stdevs, err := stdevsFor(nt.Stdevs, len(inputs), 1)
	if err != nil {
		return nil, err
	}
	if nt.Noisy != nil {
		for i, x := range nt.Noisy {
			if i >= len(inputs) || x.Rank() == 0 || x.Shape[0] != n*k || !tensor.SameShape(x.Shape[1:], inputs[i].Shape[1:]) {
				return nil, fmt.Errorf("attr: recorded noisy input %d has shape %v, want %d rows of %v", i, x.Shape, n*k, inputs[i].Shape[1:])
			}
		}
		return nt.Noisy, nil
	}
	if err := floatInputs(inputs, "NoiseTunnel"); err != nil {
		return nil, err
	}
	noisy := make([]*tensor.Tensor, len(inputs))
	for i, x := range inputs {
		noisy[i] = repeat(x, k, true)
		addNoise(rng, noisy[i], stdevs[i])
	}
	return noisy, nil
}

// innerOptions returns the options of the inner method, which sees n*k
// examples: targets, baselines and additional inputs follow the rows; with
// DrawBaselineFromDistrib each row's baseline is drawn from rng.
func (nt *NoiseTunnel) innerOptions(rng *rand.Rand, o Options, n, k int) Options {
	inner := o
	inner.Progress = nil
	inner.Target = o.Target.expand(n, k, true)
	inner.Additional = expandExtra(o.Additional, n, k, true)
	if o.Baselines == nil {
		return inner
	}
	inner.Baselines = make([]*tensor.Tensor, len(o.Baselines))
	for i, b := range o.Baselines {
		switch {
		case b == nil:
		case nt.DrawBaselineFromDistrib:
			if b.Rank() == 0 {
				inner.Baselines[i] = b
				break
			}
			idx := make([]int, n*k)
			for r := range idx {
				idx[r] = rng.IntN(b.Shape[0])
			}
			inner.Baselines[i] = gatherRows(b.AsFloat32(), idx)
		case b.Rank() > 0 && b.Shape[0] == n && n > 1:
			inner.Baselines[i] = repeat(b, k, true)
		default:
			inner.Baselines[i] = b
		}
	}
	return inner
}

// stdevsFor returns the noise's standard deviation for each of n inputs
// from stdevs: one per input, one for all, or none (def for all).
func stdevsFor(stdevs []float64, n int, def float64) ([]float64, error) {
	if err := checkStdevs("noise", stdevs); err != nil {
		return nil, err
	}
	out := make([]float64, n)
	switch len(stdevs) {
	case 0:
		for i := range out {
			out[i] = def
		}
	case 1:
		for i := range out {
			out[i] = stdevs[0]
		}
	case n:
		copy(out, stdevs)
	default:
		return nil, fmt.Errorf("attr: %d stdevs for %d inputs", len(stdevs), n)
	}
	return out, nil
}

// addNoise adds Gaussian noise of standard deviation sd to every element
// of t.
func addNoise(rng *rand.Rand, t *tensor.Tensor, sd float64) {
	for e := range t.F {
		t.F[e] += float32(rng.NormFloat64() * sd)
	}
}
