package attr

import (
	"context"
	"fmt"
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

// Progress reports work done: done of total model rows evaluated so far.
type Progress func(done, total int)

// Options holds what every attribution method takes besides its inputs,
// under Captum's names. A method ignores the fields it has no use for.
type Options struct {
	// Target is the output explained; see Class, Classes, Index.
	Target Target
	// Baselines holds one reference per input (nil: zeros). For most
	// methods a baseline is a scalar (shape []), one row (shape [1, ...]) or
	// the input's shape; for GradientShap and DeepLiftShap its rows are
	// samples of a distribution.
	Baselines []*tensor.Tensor
	// Delta asks for the convergence delta of methods that have one.
	Delta bool
	// Additional feeds the Net's Extra inputs (additional_forward_args).
	// Tensors whose first dimension is the batch size are repeated along
	// with the inputs when a method expands the batch.
	Additional []*tensor.Tensor
	// Progress, if set, is called as rows are evaluated.
	Progress Progress
	// Workers is how many model calls perturbation methods (FeatureAblation,
	// Occlusion and their layer and neuron forms) run at once. 0 or 1 runs
	// them one after the other, right for a Net, whose kernels already use
	// every core; a Go function that is safe for concurrent use and runs on
	// one core goes faster with Workers set to the number of cores.
	Workers int
}

// batchOf returns the batch size of the inputs, checking they agree.
func batchOf(inputs []*tensor.Tensor) (int, error) {
	if len(inputs) == 0 {
		return 0, fmt.Errorf("attr: no inputs")
	}
	n := -1
	for i, x := range inputs {
		if x == nil {
			return 0, fmt.Errorf("attr: input %d is nil", i)
		}
		if err := x.Check(); err != nil {
			return 0, fmt.Errorf("attr: input %d: %w", i, err)
		}
		if x.Rank() == 0 {
			return 0, fmt.Errorf("attr: input %d is a scalar; inputs need a batch dimension", i)
		}
		if n >= 0 && x.Shape[0] != n {
			return 0, fmt.Errorf("attr: input %d has batch %d, input 0 has %d", i, x.Shape[0], n)
		}
		n = x.Shape[0]
	}
	return n, nil
}

// errNoNet is returned by methods whose Net (or Model) is nil.
var errNoNet = fmt.Errorf("attr: the method has no Net (or Model) to explain")

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
		if k > 1 && x.Rank() > 0 && x.Shape[0] == n {
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
	var inject map[string]*tensor.Tensor
	if len(nt.Inject) > 0 {
		inject = map[string]*tensor.Tensor{}
		for k, v := range o.Inject {
			inject[k] = v
		}
		for k, v := range nt.Inject {
			inject[k] = v
		}
	}
	for name, t := range feeds {
		if nt.isModelInput(name) {
			inputs[name] = t
			continue
		}
		if inject == nil {
			inject = map[string]*tensor.Tensor{}
			for k, v := range o.Inject {
				inject[k] = v
			}
		}
		inject[name] = t
	}
	if inject != nil {
		oo := *o
		oo.Inject = inject
		o = &oo
	}
	return nt.Model.Forward(ctx, inputs, o)
}

func (nt *Net) isModelInput(name string) bool {
	for _, in := range nt.Model.Inputs() {
		if in.Name == name {
			return true
		}
	}
	return false
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
// inputs. rules, if not nil, replace backward rules.
func (nt *Net) gradOf(ctx context.Context, feeds map[string]*tensor.Tensor, t Target, rules engine.Rules) (*tensor.Tensor, []*tensor.Tensor, error) {
	p, err := nt.forward(ctx, feeds, &engine.Options{Outputs: []string{nt.Output}, Record: true})
	if err != nil {
		return nil, nil, err
	}
	out, err := p.Value(nt.Output)
	if err != nil {
		return nil, nil, err
	}
	seed, err := t.seed(out.Shape)
	if err != nil {
		return nil, nil, err
	}
	g, err := p.Backward(ctx, map[string]*tensor.Tensor{nt.Output: seed}, nt.Inputs, rules)
	if err != nil {
		return nil, nil, err
	}
	grads := make([]*tensor.Tensor, len(nt.Inputs))
	for i, name := range nt.Inputs {
		grads[i] = g[name]
	}
	return out, grads, nil
}

// repeat returns x repeated k times along the first dimension: each row k
// times in a row (interleave, torch's repeat_interleave) or the whole batch
// k times (torch.cat of k copies).
func repeat(x *tensor.Tensor, k int, interleave bool) *tensor.Tensor {
	n := x.Shape[0]
	row := x.Len() / max(n, 1)
	shape := append([]int{n * k}, x.Shape[1:]...)
	out := tensor.Zeros(x.DType, shape)
	for r := 0; r < n*k; r++ {
		src := r % n
		if interleave {
			src = r / k
		}
		copyRow(out, r, x, src, row)
	}
	return out
}

func copyRow(dst *tensor.Tensor, dr int, src *tensor.Tensor, sr, row int) {
	switch src.DType {
	case tensor.Float32:
		copy(dst.F[dr*row:(dr+1)*row], src.F[sr*row:(sr+1)*row])
	case tensor.Int64:
		copy(dst.I[dr*row:(dr+1)*row], src.I[sr*row:(sr+1)*row])
	case tensor.Bool:
		copy(dst.B[dr*row:(dr+1)*row], src.B[sr*row:(sr+1)*row])
	}
}
