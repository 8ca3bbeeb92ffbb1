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
// 2*B rows per example for B baselines.
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
// baseline (example-major).
func (d *DeepLiftShap) Attribute(ctx context.Context, inputs []*tensor.Tensor, a Options) (*Result, error) {
	p, err := pairBaselines("DeepLiftShap", inputs, a)
	if err != nil {
		return nil, err
	}
	dl := &DeepLift{Net: d.Net, Local: d.Local, Strict: d.Strict}
	r, err := dl.attribute(ctx, p.inputs, p.base, p.o)
	if err != nil {
		return nil, err
	}
	p.mean(r)
	if a.Progress != nil {
		a.Progress(p.n, p.n)
	}
	return r, nil
}

// baselinePairs are the rows DeepLiftShap runs DeepLift on: every example
// with every baseline of a distribution, example-major (row r is example
// r/nb with baseline r%nb).
type baselinePairs struct {
	n, nb        int
	inputs, base []*tensor.Tensor // n*nb rows each
	o            Options          // the options for those rows
}

// pairBaselines checks a baseline distribution (one tensor per input whose
// rows are its samples, at least 2 as Captum requires) and pairs every
// example with every sample.
func pairBaselines(method string, inputs []*tensor.Tensor, o Options) (*baselinePairs, error) {
	n, err := batchOf(inputs)
	if err != nil {
		return nil, err
	}
	if len(o.Baselines) != len(inputs) {
		return nil, fmt.Errorf("attr: %s needs one baseline distribution per input, got %d for %d inputs", method, len(o.Baselines), len(inputs))
	}
	nb, err := batchOf(o.Baselines)
	if err != nil {
		return nil, fmt.Errorf("attr: baselines: %w", err)
	}
	if nb < 2 {
		return nil, fmt.Errorf("attr: %s needs at least 2 baselines per input, got %d", method, nb)
	}
	p := &baselinePairs{n: n, nb: nb, inputs: make([]*tensor.Tensor, len(inputs)), base: make([]*tensor.Tensor, len(inputs)), o: o}
	for i, x := range inputs {
		b := o.Baselines[i]
		if !tensor.SameShape(b.Shape[1:], x.Shape[1:]) {
			return nil, fmt.Errorf("attr: baselines %d have shape %v, input %d has %v", i, b.Shape, i, x.Shape)
		}
		if x.DType == tensor.Float32 {
			b = b.AsFloat32()
		}
		p.inputs[i] = repeat(x, nb, true)
		p.base[i] = repeat(b, n, false)
	}
	p.o.Target = o.Target.expand(n, nb, true)
	p.o.Additional = expandExtra(o.Additional, n, nb, true)
	p.o.Progress = nil
	return p, nil
}

// mean averages the attributions of the pairs over the baselines.
func (p *baselinePairs) mean(r *Result) {
	for i, a := range r.Attributions {
		r.Attributions[i] = meanGroups(a, p.n, p.nb)
	}
}
