package attr

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/loupe-ml/loupe/tensor"
)

// GradientShap approximates SHAP values by expected gradients: for each of
// NSamples draws it adds Gaussian noise to the input, picks a baseline at
// random from the distribution, picks a point uniformly on the straight
// line between them, and multiplies the gradient there by (noisy input -
// baseline); the attributions are the mean over draws (Lundberg and Lee,
// NeurIPS 2017; Erion et al., "Improving performance of deep learning models
// with axiomatic attribution priors and expected gradients", 2019).
// Cost: NSamples forward and backward rows per example, in model calls
// that fit Options.MemoryBudget.
type GradientShap struct {
	Net *Net
	// NSamples is the number of draws per example; 0 means 5, at most
	// MaxSamples.
	NSamples int
	// Stdevs is the noise's standard deviation, one per input or one for
	// all; nil means 0 (no noise), as Captum.
	Stdevs []float64
	// Local returns local attributions, not multiplied by (noisy inputs -
	// baselines): Captum's multiply_by_inputs=False.
	Local bool
	// Seed seeds the draws.
	Seed uint64
	// Draws, when set, replaces the random draws (to replay recorded ones).
	Draws *ShapDraws
}

// Attribute computes GradientShap attributions; o.Baselines holds one
// distribution per input (its rows are samples; a scalar or a single row is
// a one-sample distribution). With o.Delta the delta of each draw is
// returned (n*NSamples values, example-major). The draws are made and
// evaluated in chunks of rows that fit Options.MemoryBudget (the same draws
// whatever the chunks), with progress reported per draw.
func (gs *GradientShap) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	src, err := gs.source(inputs, o)
	if err != nil {
		return nil, err
	}
	if gs.Net == nil || gs.Net.Model == nil {
		return nil, errNoNet
	}
	n, k := src.n, src.k
	per, err := drawsPerCall(ctx, "GradientShap", gs.Net, src, inputs, o, false)
	if err != nil {
		return nil, err
	}
	attrs := zerosLike(inputs, false)
	var delta *tensor.Tensor
	if o.Delta {
		delta = tensor.New(n * k)
	}
	for r0, r1 := range chunks(n*k, per) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pts := src.rows(r0, r1)
		ex := make([]int, r1-r0)
		for j := range ex {
			ex[j] = (r0 + j) / k
		}
		sub := o
		sub.Target = o.Target.rows(ex)
		sub.Additional = selectRows(o.Additional, n, ex)
		feeds, err := gs.Net.feeds(pts.points, sub.Additional, len(ex), 1, false)
		if err != nil {
			return nil, err
		}
		_, grads, err := gs.Net.gradOf(ctx, feeds, sub.Target, nil)
		if err != nil {
			return nil, err
		}
		if !gs.Local {
			multiplyByInputs(grads, pts.noisy, pts.bases)
		}
		for i, g := range grads {
			row := g.Len() / len(ex)
			for j, e := range ex {
				dst := attrs[i].F[e*row : (e+1)*row]
				for x, v := range g.F[j*row : (j+1)*row] {
					dst[x] += v
				}
			}
		}
		if o.Delta {
			d, err := convergenceDelta(ctx, gs.Net, pts.noisy, pts.bases, grads, sub)
			if err != nil {
				return nil, err
			}
			copy(delta.F[r0:r1], d.F)
		}
		if o.Progress != nil {
			o.Progress(r1, n*k)
		}
	}
	for _, a := range attrs {
		for e := range a.F {
			a.F[e] /= float32(k)
		}
	}
	return &Result{Attributions: attrs, Delta: delta}, nil
}

// drawsPerCall returns how many of GradientShap's draws (rows of src) go
// into one model call of the named method within o's memory budget, once
// the attributions, the baseline distribution and the deltas are kept for
// the whole call, or refuses naming the parameter to change. The
// attributions are the inputs' size, or for a layer (layer) at most a row
// of the model's values per example.
func drawsPerCall(ctx context.Context, method string, nt *Net, src *shapSource, inputs []*tensor.Tensor, o Options, layer bool) (int, error) {
	n, k := src.n, src.k
	b, err := newBudget(method, o)
	if err != nil {
		return 0, err
	}
	mrow, err := modelRowBytes(ctx, nt, inputs, o.Additional, n, true)
	if err != nil {
		return 0, err
	}
	held := tensorBytes(inputs) + tensorBytes(src.dist)
	if layer {
		held = mulBytes(int64(n), mrow/3) + tensorBytes(src.dist)
	}
	if o.Delta {
		held += 4 * int64(n) * int64(k)
	}
	if err := b.hold(held, "the attributions and the baseline distribution", "explain fewer examples at once, or raise Options.MemoryBudget"); err != nil {
		return 0, err
	}
	// A draw holds its noisy input, baseline, point and gradient rows, the
	// additional inputs' row and the net's recorded pass.
	unit := 4*rowBytes(inputs, n) + rowBytes(o.Additional, n) + mrow
	elems := 0
	for _, x := range inputs {
		elems += x.Len() / max(n, 1)
	}
	return b.units(unit, min(n*k, max(1, (1<<20)/max(elems, 1))), "one draw (the model's recorded pass and gradients on one row)",
		"raise Options.MemoryBudget")
}

// ShapDraws are the random draws of GradientShap for n examples and k
// samples each, row r = example r/k.
type ShapDraws struct {
	Noisy           []*tensor.Tensor // per input, n*k rows
	BaselineIndices [][]int          // per input, n*k baseline rows
	Alphas          []float64        // n*k points on [0,1]
}

// shapPoints are the expanded rows of GradientShap: n examples, k draws
// each (row r is example r/k).
type shapPoints struct {
	n, k   int
	noisy  []*tensor.Tensor // per input, the noisy inputs
	bases  []*tensor.Tensor // per input, the drawn baselines
	points []*tensor.Tensor // per input, bl + alpha*(noisy - bl)
}

// shapSource makes GradientShap's rows, example-major (row r is draw r%k
// of example r/k), from recorded draws or from random streams read row
// after row: one per input for the noise, one per input for the baseline
// indices and one for the alphas, so that rows made chunk by chunk are
// the rows made at once.
type shapSource struct {
	inputs, dist []*tensor.Tensor
	n, k         int
	stdevs       []float64
	draws        *ShapDraws // recorded draws, or nil
	noise, index []*rand.Rand
	alpha        *rand.Rand
}

// source checks the inputs, the baseline distributions, the parameters
// and any recorded draws, and returns the rows' source.
func (gs *GradientShap) source(inputs []*tensor.Tensor, o Options) (*shapSource, error) {
	n, err := batchOf(inputs)
	if err != nil {
		return nil, err
	}
	if err := checkCount("GradientShap", "NSamples", gs.NSamples, MaxSamples); err != nil {
		return nil, err
	}
	if err := checkStdevs("GradientShap", gs.Stdevs); err != nil {
		return nil, err
	}
	k := cmp.Or(gs.NSamples, 5)
	if len(o.Baselines) != len(inputs) {
		return nil, fmt.Errorf("attr: GradientShap needs one baseline distribution per input, got %d for %d inputs", len(o.Baselines), len(inputs))
	}
	dist := make([]*tensor.Tensor, len(inputs))
	for i, b := range o.Baselines {
		if b == nil {
			return nil, fmt.Errorf("attr: baseline distribution %d is nil", i)
		}
		b = b.AsFloat32()
		if b.Rank() == 0 {
			one, err := baselineFor(b, gatherRows(inputs[i], []int{0}), i)
			if err != nil {
				return nil, err
			}
			b = one
		}
		if !tensor.SameShape(b.Shape[1:], inputs[i].Shape[1:]) {
			return nil, fmt.Errorf("attr: baselines %d have shape %v; input %d has %v", i, b.Shape, i, inputs[i].Shape)
		}
		if b.Shape[0] == 0 {
			return nil, fmt.Errorf("attr: baseline distribution %d has no rows", i)
		}
		dist[i] = b
	}
	src := &shapSource{inputs: inputs, dist: dist, n: n, k: k, draws: gs.Draws}
	if gs.Draws != nil {
		return src, gs.Draws.check(inputs, dist, n, k)
	}
	if err := floatInputs(inputs, "GradientShap"); err != nil {
		return nil, err
	}
	if src.stdevs, err = stdevsFor(gs.Stdevs, len(inputs), 0); err != nil {
		return nil, err
	}
	for i := range inputs {
		src.noise = append(src.noise, rand.New(rand.NewPCG(gs.Seed, 0x73686170+uint64(i))))
		src.index = append(src.index, rand.New(rand.NewPCG(gs.Seed, 0x696e646578+uint64(i))))
	}
	src.alpha = rand.New(rand.NewPCG(gs.Seed, 0x616c706861))
	return src, nil
}

// rows makes rows r0..r1-1 (random draws must be asked for in order).
func (s *shapSource) rows(r0, r1 int) *shapPoints {
	m := r1 - r0
	ex := make([]int, m)
	for j := range ex {
		ex[j] = (r0 + j) / s.k
	}
	idx := make([]int, m)
	for j := range idx {
		idx[j] = r0 + j
	}
	pts := &shapPoints{n: s.n, k: s.k}
	alphas := make([]float64, m)
	if s.draws != nil {
		copy(alphas, s.draws.Alphas[r0:r1])
	} else {
		for j := range alphas {
			alphas[j] = s.alpha.Float64()
		}
	}
	for i, x := range s.inputs {
		var noisy *tensor.Tensor
		var bi []int
		if s.draws != nil {
			noisy = s.draws.Noisy[i]
			if m != noisy.Shape[0] {
				noisy = gatherRows(noisy, idx)
			}
			bi = s.draws.BaselineIndices[i][r0:r1]
		} else {
			noisy = gatherRows(x, ex)
			if sd := s.stdevs[i]; sd != 0 {
				addNoise(s.noise[i], noisy, sd)
			}
			bi = make([]int, m)
			for j := range bi {
				bi[j] = s.index[i].IntN(s.dist[i].Shape[0])
			}
		}
		bl := gatherRows(s.dist[i], bi)
		p := tensor.New(noisy.Shape...)
		row := noisy.Len() / max(m, 1)
		for r := 0; r < m; r++ {
			al := float32(alphas[r])
			for e := r * row; e < (r+1)*row; e++ {
				p.F[e] = bl.F[e] + al*(noisy.F[e]-bl.F[e])
			}
		}
		pts.noisy = append(pts.noisy, noisy)
		pts.bases = append(pts.bases, bl)
		pts.points = append(pts.points, p)
	}
	return pts
}

func (d *ShapDraws) check(inputs, dist []*tensor.Tensor, n, k int) error {
	if len(d.Noisy) != len(inputs) || len(d.BaselineIndices) != len(inputs) || len(d.Alphas) != n*k {
		return fmt.Errorf("attr: recorded draws do not fit %d inputs of %d examples with %d samples", len(inputs), n, k)
	}
	for i, x := range d.Noisy {
		if x == nil || x.Rank() == 0 || x.Shape[0] != n*k || !tensor.SameShape(x.Shape[1:], inputs[i].Shape[1:]) || x.DType != tensor.Float32 {
			return fmt.Errorf("attr: recorded noisy input %d has shape %v, want %d float rows of %v", i, shapeOf(x), n*k, inputs[i].Shape[1:])
		}
		if len(d.BaselineIndices[i]) != n*k {
			return fmt.Errorf("attr: %d recorded baseline indices for input %d, want %d", len(d.BaselineIndices[i]), i, n*k)
		}
		for _, j := range d.BaselineIndices[i] {
			if j < 0 || j >= dist[i].Shape[0] {
				return fmt.Errorf("attr: recorded baseline index %d out of range for %d baselines", j, dist[i].Shape[0])
			}
		}
	}
	return nil
}
