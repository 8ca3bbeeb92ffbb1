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
		return stridedKernel{plan: slice{}.plan}, nil
	}
	k := slice{attrs: true, starts: n.Ints("starts", nil), ends: n.Ints("ends", nil), axesAt: n.Ints("axes", nil)}
	if len(k.starts) != len(k.ends) {
		return nil, op.Errorf(n, "starts %v and ends %v differ in length", k.starts, k.ends)
	}
	return stridedKernel{plan: k.plan}, nil
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

// stridedKernel is an op whose output is its input 0 read through a
// strided view (Slice, Expand, Tile, DepthToSpace, SpaceToDepth): plan
// checks the inputs and returns the output shape and the view. repeats
// says that the view may read an input element more than once (Expand,
// Tile), so that the gradient must be added back serially.
type stridedKernel struct {
	plan    func(in []*tensor.Tensor) ([]int, strided, error)
	repeats bool
}

func (k stridedKernel) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	x, err := op.AnyArg(in, 0)
	if err != nil {
		return nil, err
	}
	shape, v, err := k.plan(in)
	if err != nil {
		return nil, err
	}
	return []*tensor.Tensor{gatherAny(x, v, shape)}, nil
}

// Backward adds the output gradient back through the view.
func (k stridedKernel) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	return dataGrad(in, need, func(g []float32) error {
		_, v, err := k.plan(in)
		if err != nil || gout[0] == nil {
			return err
		}
		scatterAddStrided(g, gout[0].F, v, !k.repeats)
		return nil
	})
}
