package attr

import (
	"context"
	"fmt"

	"github.com/loupe-ml/loupe/tensor"
)

// DeepLift attributes by propagating multipliers (ratios of output to input
// differences from a baseline) backward with the rescale rule (Shrikumar,
// Greenside and Kundaje, "Learning Important Features Through Propagating
// Activation Differences", ICML 2017), as Captum implements it: the rescale
// rule on Relu, LeakyRelu, Elu, Sigmoid, Tanh and Softplus nodes, Captum's
// rules on Softmax and MaxPool, the plain gradient elsewhere. Attributions
// sum to F(x) - F(b) (summation to delta), which the convergence delta
// checks. Cost: one forward and backward pass on 2 rows per example (inputs
// and baselines in one batch).
type DeepLift struct {
	Net *Net
	// Local returns local attributions, not multiplied by (inputs - baselines):
	// Captum's multiply_by_inputs=False.
	Local bool
	// Strict applies each rule to the multipliers that the rules after it
	// produced. Captum's module hooks do not when one rule's node feeds
	// another's (a ReLU into a MaxPool): the first sees the second's plain
	// gradient, and the attributions then miss F(x) - F(b) by a little.
	// Strict attributions sum to F(x) - F(b) exactly; the default matches
	// Captum's numbers.
	Strict bool
}

// Attribute computes DeepLift attributions of inputs from a.Baselines (nil:
// zeros; one per input: a scalar, one row, or the input's shape).
func (d *DeepLift) Attribute(ctx context.Context, inputs []*tensor.Tensor, a Options) (*Result, error) {
	_, base, err := batchAndBaselines(inputs, a.Baselines)
	if err != nil {
		return nil, err
	}
	return d.attribute(ctx, inputs, base, a)
}

// attribute runs DeepLift on inputs and their (full-shape) baselines.
func (d *DeepLift) attribute(ctx context.Context, inputs, base []*tensor.Tensor, a Options) (*Result, error) {
	n := inputs[0].Shape[0]
	if err := floatInputs(inputs, "DeepLift"); err != nil {
		return nil, err
	}
	feeds, err := d.Net.feeds(pairRows(inputs, base), a.Additional, n, 2, false)
	if err != nil {
		return nil, err
	}
	// As Captum, the target is selected in both halves: the baseline rows
	// get a gradient seed too, which the Softmax and MaxPool rules mix in.
	out, grads, err := d.Net.gradOf(ctx, feeds, a.Target.expand(n, 2, false), deepLiftRules(d.Strict))
	if err != nil {
		return nil, err
	}
	attrs := make([]*tensor.Tensor, len(inputs))
	for i, x := range inputs {
		g := tensor.New(x.Shape...)
		copy(g.F, grads[i].F[:x.Len()])
		if !d.Local {
			mulDiff(g.F, x.F, base[i].F)
		}
		attrs[i] = g
	}
	if a.Progress != nil {
		a.Progress(n, n)
	}
	res := &Result{Attributions: attrs}
	if a.Delta {
		// F(x) and F(b) are the two halves of the pass just made.
		if res.Delta, err = pairDelta(out, a.Target, attrs, n); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// DeepLiftShap approximates SHAP values with DeepLift: it runs DeepLift
// from every baseline of a distribution and averages the attributions
// (Lundberg and Lee, "A Unified Approach to Interpreting Model
// Predictions", NeurIPS 2017). Cost: one forward and backward pass on
// 2*B rows per example for B baselines, in model calls of as many
// example-baseline pairs as fit Options.MemoryBudget.
type DeepLiftShap struct {
	Net *Net
	// Local returns local attributions, not multiplied by (inputs - baselines):
	// Captum's multiply_by_inputs=False.
	Local bool
	// Strict is as DeepLift's.
	Strict bool
}

// Attribute computes DeepLiftShap attributions. a.Baselines holds one tensor
// per input whose rows are the distribution's samples (at least 2 rows, as
// Captum requires). The delta, when asked, has one entry per example and
// baseline (example-major). The pairs of an example and a baseline are
// evaluated in chunks that fit Options.MemoryBudget (the same answers
// whatever the chunks), with progress reported per pair; what would not fit
// even one pair at a time is refused before any model call.
func (d *DeepLiftShap) Attribute(ctx context.Context, inputs []*tensor.Tensor, a Options) (*Result, error) {
	if d.Net == nil || d.Net.Model == nil {
		if _, _, _, err := checkPairBaselines("DeepLiftShap", inputs, a); err != nil {
			return nil, err
		}
		return nil, errNoNet
	}
	dl := &DeepLift{Net: d.Net, Local: d.Local, Strict: d.Strict}
	return pairwise(ctx, "DeepLiftShap", d.Net, inputs, a, zerosLike(inputs, false), func(p *baselinePairs) (*Result, error) {
		return dl.attribute(ctx, p.inputs, p.base, p.o)
	})
}

// pairwise runs run on the pairs of every example with every sample of the
// baseline distribution a.Baselines (example-major), in chunks that fit
// a.MemoryBudget, and averages each example's attributions over the
// samples, summing in the order of the pairs (the same answers whatever
// the chunks). attrs, when not nil, are the zero sums (one per
// attribution, n rows); else they take the shapes of the first chunk's
// attributions. Progress is reported per pair; what would not fit even one
// pair at a time is refused before any model call.
func pairwise(ctx context.Context, method string, nt *Net, inputs []*tensor.Tensor, a Options, attrs []*tensor.Tensor, run func(p *baselinePairs) (*Result, error)) (*Result, error) {
	n, nb, dist, err := checkPairBaselines(method, inputs, a)
	if err != nil {
		return nil, err
	}
	b, err := newBudget(method, a)
	if err != nil {
		return nil, err
	}
	held := tensorBytes(inputs)
	if a.Delta {
		held += 4 * int64(n) * int64(nb)
	}
	if err := b.hold(held, "the attributions", "explain fewer examples at once, or raise Options.MemoryBudget"); err != nil {
		return nil, err
	}
	mrow, err := modelRowBytes(ctx, nt, inputs, a.Additional, n, true)
	if err != nil {
		return nil, err
	}
	// A pair is two rows of the recorded pass with its gradients, their
	// inputs, gradients and attributions, and the additional inputs.
	unit := 2 * (mrow + 3*rowBytes(inputs, n) + rowBytes(a.Additional, n))
	per, err := b.units(unit, n*nb, "one pair of an example and a baseline (the model's recorded pass and gradients on 2 rows)",
		"raise Options.MemoryBudget")
	if err != nil {
		return nil, err
	}
	var delta *tensor.Tensor
	if a.Delta {
		delta = tensor.New(n * nb)
	}
	for r0, r1 := range chunks(n*nb, per) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		r, err := run(pairChunk(inputs, dist, a, nb, r0, r1))
		if err != nil {
			return nil, err
		}
		if attrs == nil {
			attrs = make([]*tensor.Tensor, len(r.Attributions))
			for i, g := range r.Attributions {
				if g != nil && g.Rank() > 0 {
					attrs[i] = tensor.New(append([]int{n}, g.Shape[1:]...)...)
				}
			}
		}
		// Sums in the order of the rows.
		for i, g := range r.Attributions {
			if g == nil || i >= len(attrs) || attrs[i] == nil {
				continue
			}
			row := g.Len() / (r1 - r0)
			for j := range r1 - r0 {
				e := (r0 + j) / nb
				dst := attrs[i].F[e*row : (e+1)*row]
				for x, v := range g.F[j*row : (j+1)*row] {
					dst[x] += v
				}
			}
		}
		if a.Delta {
			if r.Delta == nil || r.Delta.Len() != r1-r0 {
				return nil, fmt.Errorf("attr: %s: the method returned no delta per pair", method)
			}
			copy(delta.F[r0:r1], r.Delta.F)
		}
		if a.Progress != nil {
			a.Progress(r1, n*nb)
		}
	}
	for _, t := range attrs {
		if t == nil {
			continue
		}
		for e := range t.F {
			t.F[e] /= float32(nb)
		}
	}
	return &Result{Attributions: attrs, Delta: delta}, nil
}

// baselinePairs are the rows DeepLiftShap runs DeepLift on: every example
// with every baseline of a distribution, example-major (row r is example
// r/nb with baseline r%nb).
type baselinePairs struct {
	n, nb        int
	inputs, base []*tensor.Tensor // n*nb rows each
	o            Options          // the options for those rows
}

// checkPairBaselines checks a baseline distribution (one tensor per input
// whose rows are its samples, at least 2 as Captum requires) and returns
// the number of examples and of samples, and the samples (float32 for a
// float32 input).
func checkPairBaselines(method string, inputs []*tensor.Tensor, o Options) (n, nb int, dist []*tensor.Tensor, err error) {
	n, err = batchOf(inputs)
	if err != nil {
		return 0, 0, nil, err
	}
	if len(o.Baselines) != len(inputs) {
		return 0, 0, nil, fmt.Errorf("attr: %s needs one baseline distribution per input, got %d for %d inputs", method, len(o.Baselines), len(inputs))
	}
	nb, err = batchOf(o.Baselines)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("attr: baselines: %w", err)
	}
	if nb < 2 {
		return 0, 0, nil, fmt.Errorf("attr: %s needs at least 2 baselines per input, got %d", method, nb)
	}
	dist = make([]*tensor.Tensor, len(inputs))
	for i, x := range inputs {
		b := o.Baselines[i]
		if !tensor.SameShape(b.Shape[1:], x.Shape[1:]) {
			return 0, 0, nil, fmt.Errorf("attr: baselines %d have shape %v, input %d has %v", i, b.Shape, i, x.Shape)
		}
		if x.DType == tensor.Float32 {
			b = b.AsFloat32()
		}
		dist[i] = b
	}
	return n, nb, dist, nil
}

// pairChunk makes the pair rows r0..r1-1 of every example with every
// sample of dist (row r is example r/nb with sample r%nb).
func pairChunk(inputs, dist []*tensor.Tensor, o Options, nb, r0, r1 int) *baselinePairs {
	n := inputs[0].Shape[0]
	ex := make([]int, r1-r0)
	bi := make([]int, r1-r0)
	for j := range ex {
		ex[j], bi[j] = (r0+j)/nb, (r0+j)%nb
	}
	p := &baselinePairs{n: n, nb: nb, inputs: make([]*tensor.Tensor, len(inputs)), base: make([]*tensor.Tensor, len(inputs)), o: o}
	for i, x := range inputs {
		p.inputs[i] = gatherRows(x, ex)
		p.base[i] = gatherRows(dist[i], bi)
	}
	p.o.Target = o.Target.rows(ex)
	p.o.Additional = selectRows(o.Additional, n, ex)
	p.o.Progress = nil
	return p
}
