// Package op defines what an op kernel is to loupe's engine: a forward
// function over tensors and, for differentiable ops, a vector-Jacobian
// product. Kernels are built once per node when a model is compiled (their
// attributes parsed then) and are called many times, from several goroutines
// at once: a Kernel must not keep mutable state between calls.
//
// The op packages (engine/internal/ops/...) share the helpers of this
// package to read a kernel's arguments: Arg, AnyArg, FloatArg, AnyArgs and
// FloatArgs for inputs; GradAt, ShapedGrad and Needs for Backward's output
// gradients and wanted input gradients; NormAxis and OutputCount for
// attributes and node outputs; Errorf and WantFloat for errors.
package op

import (
	"fmt"

	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// Kernel is a compiled op.
type Kernel interface {
	// Forward computes the node's outputs from its inputs. An omitted
	// optional input is nil. It returns one tensor per node output (it may
	// return more; the engine keeps those the node names).
	Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error)
}

// Specializer is implemented by kernels that can prepare, once, work on
// inputs that are constants of the model (the weights of a convolution,
// say). The engine calls Specialize once, when it compiles the model, with
// the node's constant inputs (nil for the others), and runs the kernel it
// returns. That kernel must still compute the op for any inputs: its
// preparations apply only when an input is the very tensor it was given
// (a caller may inject other values). Tensors given are never modified.
type Specializer interface {
	Specialize(consts []*tensor.Tensor) Kernel
}

// Alloc returns a float32 tensor of the given shape for a kernel's
// output. Its elements are unspecified: the kernel must write every one.
// It may be called only on the goroutine that called ForwardAlloc.
type Alloc func(shape ...int) *tensor.Tensor

// Allocating is a Kernel that can take the memory of its outputs from the
// engine, which reuses memory that no node reads any more, within a pass
// and across passes. ForwardAlloc computes what Forward computes, with
// every float32 output that it fully overwrites allocated by alloc. It
// never returns one of its inputs, or a view of one, as an output.
type Allocating interface {
	Kernel
	ForwardAlloc(in []*tensor.Tensor, alloc Alloc) ([]*tensor.Tensor, error)
}

// BackwardAllocating is a Differentiable kernel that can take the memory
// of the input gradients it returns from the engine, as Allocating does
// for outputs: BackwardAlloc is Backward with each float32 input gradient
// allocated by alloc (whose elements are unspecified: the kernel writes
// every one, or clears the tensor first). It never returns gout, an input,
// an output, or a view of one, as a gradient.
type BackwardAllocating interface {
	Differentiable
	BackwardAlloc(in, out, gout []*tensor.Tensor, need []bool, alloc Alloc) ([]*tensor.Tensor, error)
}

// NewOr returns alloc(shape...), or a zero tensor from tensor.New when
// alloc is nil: for kernels that implement Forward and ForwardAlloc in
// one function.
func NewOr(alloc Alloc, shape ...int) *tensor.Tensor {
	if alloc == nil {
		return tensor.New(shape...)
	}
	return alloc(shape...)
}

// Differentiable is a Kernel with a vector-Jacobian product.
type Differentiable interface {
	Kernel
	// Backward returns, for each input i with need[i] true, the gradient of
	// a scalar L with respect to in[i], given in, the outputs out that
	// Forward produced from them, and gout[j] = dL/d out[j] (nil when the
	// output does not reach L: treat it as zero). Entries with need[i] false
	// may be nil. Inputs that are not differentiable (integer indices,
	// shapes) get nil.
	Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error)
}

// Factory builds the kernel of one node. opset is the model's version of the
// node's domain. It returns an error naming the node when an attribute is
// invalid or unsupported.
type Factory func(n *graph.Node, opset int) (Kernel, error)

// Errorf returns an error prefixed with the node it is about.
func Errorf(n *graph.Node, format string, args ...any) error {
	return fmt.Errorf("%s: %s", n, fmt.Sprintf(format, args...))
}

// WantFloat returns an error unless t is a float32 tensor; what names it.
func WantFloat(t *tensor.Tensor, what string) error {
	if t == nil {
		return fmt.Errorf("%s is missing", what)
	}
	if t.DType != tensor.Float32 {
		return fmt.Errorf("%s is %s, want float32", what, t.DType)
	}
	return nil
}

// NeedAny reports whether any entry of need is true.
func NeedAny(need []bool) bool {
	for _, b := range need {
		if b {
			return true
		}
	}
	return false
}
