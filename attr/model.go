package attr

import (
	"context"
	"fmt"

	"github.com/loupe-ml/loupe/tensor"
)

// Model is the smallest thing perturbation methods need: a function from a
// batch of inputs to a batch of outputs. The attributed inputs come first,
// in order, then the additional ones (Options.Additional). The output's
// first dimension is the batch, or the output is a single number for the
// whole batch.
type Model interface {
	Eval(ctx context.Context, inputs []*tensor.Tensor) (*tensor.Tensor, error)
}

// Func is a Model written as a Go function: a remote service, a tree
// ensemble, anything that maps a batch to outputs. It must be safe to call
// from several goroutines at once when Parallel is used.
type Func func(ctx context.Context, inputs []*tensor.Tensor) (*tensor.Tensor, error)

// Eval calls f.
func (f Func) Eval(ctx context.Context, inputs []*tensor.Tensor) (*tensor.Tensor, error) {
	return f(ctx, inputs)
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
	f := make(map[string]*tensor.Tensor, len(inputs))
	for i, name := range nt.Inputs {
		f[name] = inputs[i]
	}
	for i, name := range nt.Extra {
		f[name] = inputs[len(nt.Inputs)+i]
	}
	return nt.eval(ctx, f)
}

// evalRows runs m on inputs (rows = copies*n, block-major) with the
// additional inputs repeated to match, and returns the target value of
// every row. An output with a single element (one number for the batch) is
// returned as one value per block of n rows.
func evalRows(ctx context.Context, m Model, inputs []*tensor.Tensor, o Options, n, copies int) ([]float32, error) {
	if m == nil {
		return nil, errNoNet
	}
	all := append([]*tensor.Tensor(nil), inputs...)
	all = append(all, expandExtra(o.Additional, n, copies, false)...)
	out, err := m.Eval(ctx, all)
	if err != nil {
		return nil, err
	}
	if out.DType != tensor.Float32 {
		out = out.AsFloat32()
	}
	if out.Len() == 1 && o.Target.IsZero() {
		if copies != 1 {
			return nil, fmt.Errorf("attr: the model returns one number per batch; perturbations_per_eval must be 1")
		}
		return []float32{out.F[0]}, nil
	}
	if out.Rank() == 0 || out.Shape[0] != n*copies {
		return nil, fmt.Errorf("attr: the model returned shape %v for a batch of %d", out.Shape, n*copies)
	}
	return o.Target.expand(n, copies, false).pick(out)
}
