package shapeops

import (
	"fmt"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// slice is Slice: starts, ends, axes and steps as inputs (opset 10 on), or
// starts, ends and axes as attributes (before).
type slice struct {
	attrs                bool
	starts, ends, axesAt []int64
}

func newSlice(n *graph.Node, opset int) (op.Kernel, error) {
	if opset >= 10 {
		return slice{}, nil
	}
	k := slice{attrs: true, starts: n.Ints("starts", nil), ends: n.Ints("ends", nil), axesAt: n.Ints("axes", nil)}
	if len(k.starts) != len(k.ends) {
		return nil, op.Errorf(n, "starts %v and ends %v differ in length", k.starts, k.ends)
	}
	return k, nil
}

// plan computes the output shape and the strided view of the input that
// the slice reads.
func (k slice) plan(in []*tensor.Tensor) ([]int, strided, error) {
	x := in[0]
	var starts, ends, axes, steps []int64
	if k.attrs {
		starts, ends, axes = k.starts, k.ends, k.axesAt
	} else {
		var err error
		if starts, err = intList(in, 1, "starts"); err != nil {
			return nil, strided{}, err
		}
		if ends, err = intList(in, 2, "ends"); err != nil {
			return nil, strided{}, err
		}
		if op.Arg(in, 3) != nil {
			if axes, err = intList(in, 3, "axes"); err != nil {
				return nil, strided{}, err
			}
		}
		if op.Arg(in, 4) != nil {
			if steps, err = intList(in, 4, "steps"); err != nil {
				return nil, strided{}, err
			}
		}
	}
	n := len(starts)
	if len(ends) != n || (axes != nil && len(axes) != n) || (steps != nil && len(steps) != n) {
		return nil, strided{}, fmt.Errorf("starts %v, ends %v, axes %v and steps %v differ in length", starts, ends, axes, steps)
	}
	r := x.Rank()
	st := tensor.Strides(x.Shape)
	shape := copyShape(x.Shape)
	strides := copyShape(st)
	base := 0
	done := make([]bool, r)
	for i := 0; i < n; i++ {
		ax := i
		if axes != nil {
			a, err := op.NormAxis(axes[i], r)
			if err != nil {
				return nil, strided{}, fmt.Errorf("axes %v for input 0 of shape %v: %v", axes, x.Shape, err)
			}
			ax = a
		} else if i >= r {
			return nil, strided{}, fmt.Errorf("%d starts for input 0 of rank %d", n, r)
		}
		if done[ax] {
			return nil, strided{}, fmt.Errorf("axes %v repeat axis %d", axes, ax)
		}
		done[ax] = true
		step := int64(1)
		if steps != nil {
			step = steps[i]
		}
		if step == 0 {
			return nil, strided{}, fmt.Errorf("steps %v contain 0", steps)
		}
		dim := int64(x.Shape[ax])
		// A step longer than the axis takes at most one element: clamping
		// it keeps the arithmetic below from overflowing (INT64_MIN).
		step = min(max(step, -max(dim, 1)), max(dim, 1))
		s, e := sliceBounds(starts[i], ends[i], step, dim)
		count := int64(0)
		if step > 0 && e > s {
			count = (e - s + step - 1) / step
		} else if step < 0 && s > e {
			count = (s - e + (-step) - 1) / (-step)
		}
		shape[ax] = int(count)
		if count > 0 {
			base += int(s) * st[ax]
		}
		strides[ax] = int(step) * st[ax]
	}
	return shape, strided{shape: shape, strides: strides, base: base}, nil
}

// sliceBounds clamps start and end as ONNX specifies for an axis of
// length dim: negatives count from the end, and out-of-range values (such
// as INT64_MAX for "to the end") are clamped.
func sliceBounds(start, end, step, dim int64) (int64, int64) {
	if start < 0 {
		start += dim
	}
	if end < 0 {
		end += dim
	}
	if step > 0 {
		start = min(max(start, 0), dim)
		end = min(max(end, 0), dim)
	} else {
		start = min(max(start, 0), dim-1)
		end = min(max(end, -1), dim-1)
	}
	return start, end
}

func (k slice) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	return viewForward(in, func() ([]int, strided, error) { return k.plan(in) })
}

func (k slice) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	return viewBackward(in, gout, need, func() ([]int, strided, error) { return k.plan(in) })
}

// viewForward serves the ops whose output is their input read through a
// strided view (Slice, DepthToSpace, SpaceToDepth): plan gives the output
// shape and the view.
func viewForward(in []*tensor.Tensor, plan func() ([]int, strided, error)) ([]*tensor.Tensor, error) {
	x, err := op.AnyArg(in, 0)
	if err != nil {
		return nil, err
	}
	shape, v, err := plan()
	if err != nil {
		return nil, err
	}
	return []*tensor.Tensor{gatherAny(x, v, shape)}, nil
}

// viewBackward scatters the output gradient back through a view that
// reads each input element at most once.
func viewBackward(in, gout []*tensor.Tensor, need []bool, plan func() ([]int, strided, error)) ([]*tensor.Tensor, error) {
	return scatterBack(in, gout, need, func() (strided, error) {
		_, v, err := plan()
		return v, err
	}, true)
}

// scatterBack returns input 0's gradient: gout[0] added back through the
// view plan gives; distinct says no two view elements share an input
// element (the scatter may then run in parallel).
func scatterBack(in, gout []*tensor.Tensor, need []bool, plan func() (strided, error), distinct bool) ([]*tensor.Tensor, error) {
	return dataGrad(in, need, func(g []float32) error {
		v, err := plan()
		if err != nil || gout[0] == nil {
			return err
		}
		scatterAddStrided(g, gout[0].F, v, distinct)
		return nil
	})
}
