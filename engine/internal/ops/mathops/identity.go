package mathops

import (
	"fmt"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// identityKernel is Identity: it returns its input (of any type).
type identityKernel struct{}

func newIdentity(*graph.Node, int) (op.Kernel, error) { return identityKernel{}, nil }

func (identityKernel) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	x, err := op.AnyArg(in, 0)
	if err != nil {
		return nil, err
	}
	return []*tensor.Tensor{x}, nil
}

func (identityKernel) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	return passGrad(in, gout, need), nil
}

// passGrad returns gout[0] as the gradient of input 0 (zeros when absent).
func passGrad(in, gout []*tensor.Tensor, need []bool) []*tensor.Tensor {
	res := make([]*tensor.Tensor, len(in))
	x := op.Arg(in, 0)
	if !op.Needs(need, 0) || x == nil || x.DType != tensor.Float32 {
		return res
	}
	if g := op.GradAt(gout, 0); g != nil {
		res[0] = g
	} else {
		res[0] = zerosLike(x)
	}
	return res
}

// dropoutKernel is Dropout at inference: the output is the input and the
// optional mask output is all true. From opset 12 a training_mode input
// that is true is refused (loupe does not draw random masks).
type dropoutKernel struct{ mask bool }

func newDropout(n *graph.Node, opset int) (op.Kernel, error) {
	return dropoutKernel{mask: op.OutputCount(n) > 1}, nil
}

func (k dropoutKernel) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	x, err := op.AnyArg(in, 0)
	if err != nil {
		return nil, err
	}
	if t := op.Arg(in, 2); t != nil {
		if t.DType != tensor.Bool || t.Len() != 1 {
			return nil, fmt.Errorf("input 2 (training_mode) is %s%v, want a bool scalar", t.DType, t.Shape)
		}
		if t.B[0] {
			return nil, fmt.Errorf("input 2 (training_mode) is true: training-mode dropout is not supported")
		}
	}
	if !k.mask {
		return []*tensor.Tensor{x}, nil
	}
	m := tensor.NewBool(x.Shape...)
	for i := range m.B {
		m.B[i] = true
	}
	return []*tensor.Tensor{x, m}, nil
}

func (dropoutKernel) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	return passGrad(in, gout, need), nil
}
