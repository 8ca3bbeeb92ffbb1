package core

import (
	"fmt"

	"github.com/loupe-ml/loupe/engine/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// reduce is ReduceSum or ReduceMean over the given axes (attribute, or
// second input as ReduceSum takes from opset 13).
type reduce struct {
	mean      bool
	axes      []int64
	keepdims  bool
	noopEmpty bool
}

func newReduce(kind string) op.Factory {
	return func(n *graph.Node, opset int) (op.Kernel, error) {
		return reduce{
			mean:      kind == "ReduceMean",
			axes:      n.Ints("axes", nil),
			keepdims:  n.Int("keepdims", 1) != 0,
			noopEmpty: n.Int("noop_with_empty_axes", 0) != 0,
		}, nil
	}
}

// plan returns the reduced flags per dimension and the output shape.
func (r reduce) plan(in []*tensor.Tensor) ([]bool, []int, error) {
	x := in[0]
	axes := r.axes
	if len(in) > 1 && in[1] != nil {
		if in[1].DType != tensor.Int64 {
			return nil, nil, fmt.Errorf("axes input is %s, want int64", in[1].DType)
		}
		axes = in[1].I
	}
	red := make([]bool, x.Rank())
	if len(axes) == 0 {
		if !r.noopEmpty {
			for i := range red {
				red[i] = true
			}
		}
	}
	for _, a := range axes {
		d, err := axis(nil, a, x.Rank())
		if err != nil {
			return nil, nil, err
		}
		red[d] = true
	}
	var shape []int
	for d, n := range x.Shape {
		switch {
		case !red[d]:
			shape = append(shape, n)
		case r.keepdims:
			shape = append(shape, 1)
		}
	}
	if shape == nil {
		shape = []int{}
	}
	return red, shape, nil
}

// keptShape is the output shape with reduced dimensions kept as 1.
func keptShape(x []int, red []bool) []int {
	s := append([]int(nil), x...)
	for d := range s {
		if red[d] {
			s[d] = 1
		}
	}
	return s
}

func (r reduce) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	if err := wantFloat(in, 0); err != nil {
		return nil, err
	}
	red, shape, err := r.plan(in)
	if err != nil {
		return nil, err
	}
	x := in[0]
	sum := tensor.SumTo(x, keptShape(x.Shape, red))
	if sum == x {
		sum = x.Clone()
	}
	if r.mean {
		cnt := float32(x.Len() / max(sum.Len(), 1))
		for i := range sum.F {
			sum.F[i] /= cnt
		}
	}
	sum.Shape = shape
	return []*tensor.Tensor{sum}, nil
}

func (r reduce) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	grads := make([]*tensor.Tensor, len(in))
	if !need[0] || gout[0] == nil {
		return grads, nil
	}
	red, _, err := r.plan(in)
	if err != nil {
		return nil, err
	}
	x := in[0]
	kept := keptShape(x.Shape, red)
	g := &tensor.Tensor{DType: tensor.Float32, Shape: kept, F: gout[0].F}
	gx := tensor.New(x.Shape...)
	scale := float32(1)
	if r.mean {
		scale = 1 / float32(x.Len()/max(g.Len(), 1))
	}
	broadcast2(x.Shape, kept, x.Shape, func(o, _, j int) { gx.F[o] = g.F[j] * scale })
	grads[0] = gx
	return grads, nil
}
