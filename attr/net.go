package attr

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/tensor"
)

// Net is an ONNX model prepared for attribution: which of its inputs are
// attributed (in the order the caller passes them), which are additional
// forward arguments (fed but never attributed, Captum's
// additional_forward_args), and which output is explained.
type Net struct {
	Model  *engine.Model
	Inputs []string // attributed inputs, in order
	Extra  []string // inputs fed by Options.Additional, in order
	Output string   // the output explained
	// Inject replaces named tensors (weights, for the randomization check)
	// in every evaluation.
	Inject map[string]*tensor.Tensor
}

// NewNet prepares m for attribution: the inputs named in extra are fed by
// Options.Additional; all its other inputs are attributed, in the model's
// order; the first output is explained.
func NewNet(m *engine.Model, extra ...string) (*Net, error) {
	n := &Net{Model: m, Extra: extra, Output: m.OutputNames()[0]}
	for _, in := range m.Inputs() {
		if !slices.Contains(extra, in.Name) {
			n.Inputs = append(n.Inputs, in.Name)
		}
	}
	for _, e := range extra {
		if !n.isModelInput(e) {
			return nil, fmt.Errorf("attr: the model has no input named %q", e)
		}
	}
	if len(n.Inputs) == 0 {
		return nil, fmt.Errorf("attr: no input left to attribute")
	}
	return n, nil
}

// Eval runs the net on its attributed inputs followed by its extra ones and
// returns the explained output.
func (nt *Net) Eval(ctx context.Context, inputs []*tensor.Tensor) (*tensor.Tensor, error) {
	if nt == nil || nt.Model == nil {
		return nil, errNoNet
	}
	if len(inputs) != len(nt.Inputs)+len(nt.Extra) {
		return nil, fmt.Errorf("attr: %d tensors given, the model takes %d attributed and %d additional inputs", len(inputs), len(nt.Inputs), len(nt.Extra))
	}
	f, err := nt.feeds(inputs[:len(nt.Inputs)], inputs[len(nt.Inputs):], 0, 1, false)
	if err != nil {
		return nil, err
	}
	return nt.eval(ctx, f)
}

// batch checks that the net is set and returns the batch size of the
// inputs.
func (nt *Net) batch(inputs []*tensor.Tensor) (int, error) {
	if nt == nil || nt.Model == nil {
		return 0, errNoNet
	}
	return batchOf(inputs)
}

// resolve names a layer's tensor, as engine.Model.Resolve.
func (nt *Net) resolve(layer string, input bool) (string, error) {
	if nt == nil || nt.Model == nil {
		return "", errNoNet
	}
	name, err := nt.Model.Resolve(layer, input)
	if err != nil {
		return "", fmt.Errorf("attr: %w", err)
	}
	return name, nil
}

// isModelInput reports whether name is an input of the ONNX model.
func (nt *Net) isModelInput(name string) bool {
	for _, in := range nt.Model.Inputs() {
		if in.Name == name {
			return true
		}
	}
	return false
}

// feeds maps the Net's inputs to tensors; extras whose first dimension is n
// are repeated k times (interleaved or in blocks) to match expanded rows.
func (nt *Net) feeds(inputs, extra []*tensor.Tensor, n, k int, interleave bool) (map[string]*tensor.Tensor, error) {
	if nt == nil || nt.Model == nil {
		return nil, errNoNet
	}
	if len(inputs) != len(nt.Inputs) {
		return nil, fmt.Errorf("attr: %d inputs given, the model attributes %d (%v)", len(inputs), len(nt.Inputs), nt.Inputs)
	}
	if len(extra) != len(nt.Extra) {
		return nil, fmt.Errorf("attr: %d additional inputs given, the model needs %d (%v)", len(extra), len(nt.Extra), nt.Extra)
	}
	f := make(map[string]*tensor.Tensor, len(inputs)+len(extra))
	for i, name := range nt.Inputs {
		f[name] = inputs[i]
	}
	for i, name := range nt.Extra {
		x := extra[i]
		if x == nil {
			return nil, fmt.Errorf("attr: additional input %q is nil", name)
		}
		if k > 1 && batchAligned(x, n) {
			x = repeat(x, k, interleave)
		}
		f[name] = x
	}
	return f, nil
}

// forward runs the model: feeds that are model inputs are given as such,
// feeds of intermediate tensors (an embedding's output standing in for
// token ids, see Net.WithLayerInput) are injected.
func (nt *Net) forward(ctx context.Context, feeds map[string]*tensor.Tensor, o *engine.Options) (*engine.Pass, error) {
	inputs := map[string]*tensor.Tensor{}
	// o.Inject with the net's injections and the injected feeds, made when
	// there are some.
	var inject map[string]*tensor.Tensor
	add := func(name string, t *tensor.Tensor) {
		if inject == nil {
			inject = make(map[string]*tensor.Tensor, len(o.Inject)+1)
			maps.Copy(inject, o.Inject)
		}
		inject[name] = t
	}
	for name, t := range nt.Inject {
		add(name, t)
	}
	for name, t := range feeds {
		if nt.isModelInput(name) {
			inputs[name] = t
		} else {
			add(name, t)
		}
	}
	if inject != nil {
		oo := *o
		oo.Inject = inject
		o = &oo
	}
	return nt.Model.Forward(ctx, inputs, o)
}

// eval runs the net on a batch and returns the explained output.
func (nt *Net) eval(ctx context.Context, feeds map[string]*tensor.Tensor) (*tensor.Tensor, error) {
	p, err := nt.forward(ctx, feeds, &engine.Options{Outputs: []string{nt.Output}})
	if err != nil {
		return nil, err
	}
	return p.Value(nt.Output)
}

// gradOf runs the net on a batch and returns the output and the gradients
// of the sum of the selected targets with respect to the attributed
// inputs. rules, if not nil, replace backward rules. The pass runs
// Conv -> BatchNormalization [-> Relu] and Add -> Relu chains fused
// where no rule applies inside them (engine.Options.Fuse and Rules),
// which changes the gradients by float32 rounding only.
func (nt *Net) gradOf(ctx context.Context, feeds map[string]*tensor.Tensor, t Target, rules engine.Rules) (*tensor.Tensor, []*tensor.Tensor, error) {
	p, err := nt.forward(ctx, feeds, &engine.Options{Outputs: []string{nt.Output}, Record: true, Fuse: true, Rules: rules})
	if err != nil {
		return nil, nil, err
	}
	out, err := p.Value(nt.Output)
	if err != nil {
		return nil, nil, err
	}
	seed, err := t.seedOf(out)
	if err != nil {
		return nil, nil, err
	}
	g, err := p.Backward(ctx, map[string]*tensor.Tensor{nt.Output: seed}, nt.Inputs, rules)
	if err != nil {
		return nil, nil, err
	}
	// The pass's memory goes to the next pass (the output and the
	// gradients are kept).
	p.Release()
	grads := make([]*tensor.Tensor, len(nt.Inputs))
	for i, name := range nt.Inputs {
		grads[i] = g[name]
	}
	return out, grads, nil
}
