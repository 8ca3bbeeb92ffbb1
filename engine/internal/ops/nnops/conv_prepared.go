package nnops

import (
	"sync"

	"github.com/loupe-ml/loupe/engine/internal/kernels"
	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/tensor"
)

// Specialize returns, when the weights are a constant of the model, a
// Conv kernel that transforms them for Winograd's algorithm once, on the
// first call that runs it, rather than on every call (for resnet18 at
// batch 1 the transforms were an eighth of the forward pass).
func (c *conv) Specialize(consts []*tensor.Tensor) op.Kernel {
	w := op.Arg(consts, 1)
	if w == nil || w.DType != tensor.Float32 {
		return c
	}
	return &preparedConv{conv: c, w: w}
}

// preparedConv is a Conv kernel whose weights w are a constant: the
// Winograd transforms of w, for the forward pass and for the input
// gradient, are computed when first needed and kept (4 times the size of
// w each). Calls whose weights are another tensor (injected, or changed by
// a backward rule) run as a plain Conv.
type preparedConv struct {
	*conv
	w         *tensor.Tensor
	fwd, grad lazyWeights
}

// lazyWeights holds weights transformed once.
type lazyWeights struct {
	once sync.Once
	u    []float32
}

// get returns the weights w transformed for p (with grad, for its input
// gradient), transforming them on the first call.
func (l *lazyWeights) get(p convParams, w []float32, grad bool) []float32 {
	l.once.Do(func() { l.u = kernels.WinogradWeights(kernels.ConvParams(p), w, grad) })
	return l.u
}

// prepared returns the transformed weights for p when the call's weights
// are the constant ones and the convolution runs by Winograd's algorithm,
// else nil.
func (c *preparedConv) prepared(in []*tensor.Tensor, p convParams, grad bool) []float32 {
	if op.Arg(in, 1) != c.w || !kernels.UsesWinograd(kernels.ConvParams(p), grad) {
		return nil
	}
	if grad {
		return c.grad.get(p, c.w.F, true)
	}
	return c.fwd.get(p, c.w.F, false)
}

func (c *preparedConv) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	return c.forward(in, c.prepared, nil)
}

// ForwardAlloc is Forward with the output from alloc.
func (c *preparedConv) ForwardAlloc(in []*tensor.Tensor, alloc op.Alloc) ([]*tensor.Tensor, error) {
	return c.forward(in, c.prepared, alloc)
}

func (c *preparedConv) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	return c.backward(in, gout, need, c.prepared, nil)
}

// BackwardAlloc is Backward with the input's gradient from alloc.
func (c *preparedConv) BackwardAlloc(in, out, gout []*tensor.Tensor, need []bool, alloc op.Alloc) ([]*tensor.Tensor, error) {
	return c.backward(in, gout, need, c.prepared, alloc)
}
