package attr

import (
	"cmp"
	"context"
	"errors"
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
// in batches of SamplesBatchSize noisy copies per example. The noisy copies
// are drawn batch by batch (a batch smaller when Options.MemoryBudget asks
// for it) and never all held at once.
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
	src, err := nt.source(inputs, o, n, k)
	if err != nil {
		return nil, err
	}
	// Rows are example-major (row r is copy r%k of example r/k) and are
	// drawn in order, chunk after chunk, so the chunk size changes nothing.
	b, err := newBudget("NoiseTunnel", o)
	if err != nil {
		return nil, err
	}
	held := 2 * tensorBytes(inputs)
	if o.Delta {
		held += 4 * int64(n) * int64(k)
	}
	if err := b.hold(held, "the accumulated attributions", "explain fewer examples at once, or raise Options.MemoryBudget"); err != nil {
		return nil, err
	}
	per := n * k
	if nt.SamplesBatchSize > 0 {
		per = n * min(k, nt.SamplesBatchSize)
	} else {
		// Bound each inner call as stepsPerCall does (about 2^20 input elements).
		per = n * stepsPerCall(0, 1, k, inputs)
	}
	// A noisy row, its baseline and additional inputs, and the inner
	// method's attribution of it; the inner method splits its own work
	// within what is left.
	rowCost := 3*rowBytes(inputs, n) + rowBytes(o.Additional, n)
	if per, err = b.units(rowCost, per, "one noisy copy", "explain fewer examples at once, or raise Options.MemoryBudget"); err != nil {
		return nil, err
	}
	sum, sq := zerosLike(inputs, false), zerosLike(inputs, false)
	var delta *tensor.Tensor
	if o.Delta {
		delta = tensor.New(n * k)
	}
	for r0 := 0; r0 < n*k; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		r1 := min(n*k, r0+per)
		rows := make([]int, r1-r0)
		for j := range rows {
			rows[j] = r0 + j
		}
		noisy, call := src.chunk(rows)
		call.MemoryBudget = max(1, b.limit-b.held-mulBytes(int64(len(rows)), rowCost))
		r, err := nt.Method.Attribute(ctx, noisy, call)
		if errors.Is(err, ErrMemoryBudget) && per > 1 {
			// The inner method cannot fit this many rows in one step:
			// halve the chunk and draw it again.
			per = max(1, per/2)
			src.rewind()
			continue
		}
		if err != nil {
			return nil, err
		}
		src.commit()
		for i, at := range r.Attributions {
			row := at.Len() / len(rows)
			for j, rr := range rows {
				e := rr / k
				a := at.F[j*row : (j+1)*row]
				s := sum[i].F[e*row : (e+1)*row]
				q := sq[i].F[e*row : (e+1)*row]
				for x, v := range a {
					s[x] += v
					q[x] += v * v
				}
			}
		}
		if o.Delta {
			if r.Delta == nil {
				return nil, fmt.Errorf("attr: NoiseTunnel: the inner method returned no delta")
			}
			for j, rr := range rows {
				delta.F[rr] = r.Delta.F[j]
			}
		}
		if o.Progress != nil {
			o.Progress(r1, n*k)
		}
		r0 = r1
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

// noiseSource draws the noisy rows of a NoiseTunnel call chunk by chunk
// (or replays them from NoiseTunnel.Noisy), with the inner method's
// options for each chunk: targets, baselines and additional inputs follow
// the rows.
type noiseSource struct {
	nt     *NoiseTunnel
	inputs []*tensor.Tensor
	o      Options
	n, k   int
	stdevs []float64
	// One random stream per input for the noise and one per baseline for
	// DrawBaselineFromDistrib, drawn row after row; saved holds their
	// states before the chunk in progress, for rewind.
	noise, base []*rand.PCG
	saved       [][]byte
}

// source checks the noise parameters and the recorded draws and returns
// the rows' source.
func (nt *NoiseTunnel) source(inputs []*tensor.Tensor, o Options, n, k int) (*noiseSource, error) {
	stdevs, err := stdevsFor(nt.Stdevs, len(inputs), 1)
	if err != nil {
		return nil, err
	}
	if nt.Noisy != nil {
		if len(nt.Noisy) != len(inputs) {
			return nil, fmt.Errorf("attr: %d recorded noisy inputs for %d inputs", len(nt.Noisy), len(inputs))
		}
		for i, x := range nt.Noisy {
			if x == nil || x.Rank() == 0 || x.Shape[0] != n*k || !tensor.SameShape(x.Shape[1:], inputs[i].Shape[1:]) {
				return nil, fmt.Errorf("attr: recorded noisy input %d has shape %v, want %d rows of %v", i, shapeOf(x), n*k, inputs[i].Shape[1:])
			}
		}
	} else if err := floatInputs(inputs, "NoiseTunnel"); err != nil {
		return nil, err
	}
	src := &noiseSource{nt: nt, inputs: inputs, o: o, n: n, k: k, stdevs: stdevs}
	for i := range inputs {
		// Input 0's stream is the one loupe has always used.
		src.noise = append(src.noise, rand.NewPCG(nt.Seed, 0x6e6f697365+uint64(i)))
		src.base = append(src.base, rand.NewPCG(nt.Seed, 0x62617365+uint64(i)))
	}
	src.commit()
	return src, nil
}

// shapeOf is t's shape, or nil for a nil tensor.
func shapeOf(t *tensor.Tensor) []int {
	if t == nil {
		return nil
	}
	return t.Shape
}

// commit marks the draws so far as used: rewind returns here.
func (s *noiseSource) commit() {
	s.saved = s.saved[:0]
	for _, g := range append(append([]*rand.PCG(nil), s.noise...), s.base...) {
		b, _ := g.MarshalBinary()
		s.saved = append(s.saved, b)
	}
}

// rewind undoes the draws since the last commit.
func (s *noiseSource) rewind() {
	for j, g := range append(append([]*rand.PCG(nil), s.noise...), s.base...) {
		_ = g.UnmarshalBinary(s.saved[j])
	}
}

// chunk returns the noisy inputs of the given rows (consecutive,
// example-major) and the inner method's options for them.
func (s *noiseSource) chunk(rows []int) ([]*tensor.Tensor, Options) {
	ex := make([]int, len(rows))
	for j, r := range rows {
		ex[j] = r / s.k
	}
	noisy := make([]*tensor.Tensor, len(s.inputs))
	for i, x := range s.inputs {
		if s.nt.Noisy != nil {
			noisy[i] = s.nt.Noisy[i]
			if len(rows) != s.n*s.k {
				noisy[i] = gatherRows(noisy[i], rows)
			}
			continue
		}
		noisy[i] = gatherRows(x, ex)
		if sd := s.stdevs[i]; sd != 0 {
			rng := rand.New(s.noise[i])
			for e := range noisy[i].F {
				noisy[i].F[e] += float32(rng.NormFloat64() * sd)
			}
		}
	}
	inner := s.o
	inner.Progress = nil
	inner.Target = s.o.Target.rows(ex)
	inner.Additional = selectRows(s.o.Additional, s.n, ex)
	if s.o.Baselines == nil {
		return noisy, inner
	}
	inner.Baselines = make([]*tensor.Tensor, len(s.o.Baselines))
	for i, b := range s.o.Baselines {
		switch {
		case b == nil:
		case s.nt.DrawBaselineFromDistrib:
			if b.Rank() == 0 {
				inner.Baselines[i] = b
				break
			}
			rng := rand.New(s.base[min(i, len(s.base)-1)])
			idx := make([]int, len(rows))
			for j := range idx {
				idx[j] = rng.IntN(b.Shape[0])
			}
			inner.Baselines[i] = gatherRows(b.AsFloat32(), idx)
		case b.Rank() > 0 && b.Shape[0] == s.n && s.n > 1:
			inner.Baselines[i] = gatherRows(b, ex)
		default:
			inner.Baselines[i] = b
		}
	}
	return noisy, inner
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
