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
// Cost: NSamples forward and backward rows per example.
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
// returned (n*NSamples values, example-major).
func (gs *GradientShap) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	pts, err := gs.points(inputs, o)
	if err != nil {
		return nil, err
	}
	feeds, err := gs.Net.feeds(pts.points, o.Additional, pts.n, pts.k, true)
	if err != nil {
		return nil, err
	}
	_, grads, err := gs.Net.gradOf(ctx, feeds, o.Target.expand(pts.n, pts.k, true), nil)
	if err != nil {
		return nil, err
	}
	if !gs.Local {
		multiplyByInputs(grads, pts.noisy, pts.bases)
	}
	res, err := pts.result(ctx, gs.Net, grads, o)
	if err != nil {
		return nil, err
	}
	if o.Progress != nil {
		o.Progress(pts.n, pts.n)
	}
	return res, nil
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

// points draws (or replays) the noise, baselines and alphas.
func (gs *GradientShap) points(inputs []*tensor.Tensor, o Options) (*shapPoints, error) {
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
		dist[i] = b
	}
	d := gs.Draws
	if d == nil {
		if d, err = gs.draw(inputs, dist, n, k); err != nil {
			return nil, err
		}
	} else if err := d.check(inputs, dist, n, k); err != nil {
		return nil, err
	}
	rows := n * k
	pts := &shapPoints{n: n, k: k, noisy: d.Noisy}
	for i := range inputs {
		bl := gatherRows(dist[i], d.BaselineIndices[i])
		noisy := d.Noisy[i]
		p := tensor.New(noisy.Shape...)
		row := noisy.Len() / rows
		for r := 0; r < rows; r++ {
			al := float32(d.Alphas[r])
			for e := r * row; e < (r+1)*row; e++ {
				p.F[e] = bl.F[e] + al*(noisy.F[e]-bl.F[e])
			}
		}
		pts.bases = append(pts.bases, bl)
		pts.points = append(pts.points, p)
	}
	return pts, nil
}

// result averages the attributions of the draws (n*k rows) per example;
// with o.Delta it adds the convergence delta of every draw.
func (p *shapPoints) result(ctx context.Context, nt *Net, attrs []*tensor.Tensor, o Options) (*Result, error) {
	res := &Result{Attributions: make([]*tensor.Tensor, len(attrs))}
	for i, a := range attrs {
		res.Attributions[i] = meanGroups(a, p.n, p.k)
	}
	if o.Delta {
		sub := o
		sub.Target = o.Target.expand(p.n, p.k, true)
		sub.Additional = expandExtra(o.Additional, p.n, p.k, true)
		var err error
		if res.Delta, err = convergenceDelta(ctx, nt, p.noisy, p.bases, attrs, sub); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func (gs *GradientShap) draw(inputs, dist []*tensor.Tensor, n, k int) (*ShapDraws, error) {
	rng := rand.New(rand.NewPCG(gs.Seed, 0x73686170))
	if err := floatInputs(inputs, "GradientShap"); err != nil {
		return nil, err
	}
	stdevs, err := stdevsFor(gs.Stdevs, len(inputs), 0)
	if err != nil {
		return nil, err
	}
	d := &ShapDraws{Alphas: make([]float64, n*k)}
	for i, x := range inputs {
		r := repeat(x, k, true)
		if stdevs[i] != 0 {
			addNoise(rng, r, stdevs[i])
		}
		d.Noisy = append(d.Noisy, r)
		idx := make([]int, n*k)
		for j := range idx {
			idx[j] = rng.IntN(dist[i].Shape[0])
		}
		d.BaselineIndices = append(d.BaselineIndices, idx)
	}
	for j := range d.Alphas {
		d.Alphas[j] = rng.Float64()
	}
	return d, nil
}

func (d *ShapDraws) check(inputs, dist []*tensor.Tensor, n, k int) error {
	if len(d.Noisy) != len(inputs) || len(d.BaselineIndices) != len(inputs) || len(d.Alphas) != n*k {
		return fmt.Errorf("attr: recorded draws do not fit %d inputs of %d examples with %d samples", len(inputs), n, k)
	}
	for i, x := range d.Noisy {
		if x.Rank() == 0 || x.Shape[0] != n*k || !tensor.SameShape(x.Shape[1:], inputs[i].Shape[1:]) {
			return fmt.Errorf("attr: recorded noisy input %d has shape %v", i, x.Shape)
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
