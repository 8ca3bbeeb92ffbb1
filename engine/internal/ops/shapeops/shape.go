package shapeops

import (
	"fmt"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// shapeKernel is Shape: the input's shape as a 1-D int64 tensor, optionally
// a [start, end) part of it (opset 15).
type shapeKernel struct {
	start, end int64
	hasEnd     bool
}

func newShape(n *graph.Node, opset int) (op.Kernel, error) {
	k := shapeKernel{start: n.Int("start", 0)}
	if n.Has("end") {
		k.end, k.hasEnd = n.Int("end", 0), true
	}
	return k, nil
}

func (k shapeKernel) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	x, err := op.AnyArg(in, 0)
	if err != nil {
		return nil, err
	}
	r := int64(x.Rank())
	clampDim := func(v int64) int64 {
		if v < 0 {
			v += r
		}
		return min(max(v, 0), r)
	}
	s, e := clampDim(k.start), r
	if k.hasEnd {
		e = clampDim(k.end)
	}
	e = max(e, s)
	out := tensor.NewInt(int(e - s))
	for i := s; i < e; i++ {
		out.I[i-s] = int64(x.Shape[i])
	}
	return []*tensor.Tensor{out}, nil
}

// sizeKernel is Size: the number of elements as an int64 scalar.
type sizeKernel struct{}

func newSize(n *graph.Node, opset int) (op.Kernel, error) { return sizeKernel{}, nil }

func (sizeKernel) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	x, err := op.AnyArg(in, 0)
	if err != nil {
		return nil, err
	}
	return []*tensor.Tensor{tensor.ScalarInt(int64(x.Len()))}, nil
}

// viewKernel covers the ops that keep the data and change the shape:
// Reshape, Flatten, Squeeze and Unsqueeze. outShape computes the new shape
// from the inputs; the gradient is the output gradient reshaped back.
type viewKernel struct {
	outShape func(in []*tensor.Tensor) ([]int, error)
}

func (k viewKernel) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	x, err := op.AnyArg(in, 0)
	if err != nil {
		return nil, err
	}
	shape, err := k.outShape(in)
	if err != nil {
		return nil, err
	}
	if tensor.Size(shape) != x.Len() {
		return nil, fmt.Errorf("cannot view input 0 of shape %v as %v", x.Shape, shape)
	}
	return []*tensor.Tensor{withShape(x, shape)}, nil
}

func (k viewKernel) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	grads := make([]*tensor.Tensor, len(in))
	if op.Needs(need, 0) && in[0].DType == tensor.Float32 {
		grads[0] = reshapeGrad(gout, 0, in[0].Shape)
	}
	return grads, nil
}

// reshapeGrad returns gout[j] viewed with shape, or zeros when it is nil.
func reshapeGrad(gout []*tensor.Tensor, j int, shape []int) *tensor.Tensor {
	g := op.Arg(gout, j)
	if g == nil {
		return tensor.New(shape...)
	}
	return view(g, shape)
}

func newReshape(n *graph.Node, opset int) (op.Kernel, error) {
	allowZero := n.Int("allowzero", 0) != 0
	attrShape := n.Ints("shape", nil) // opset < 5
	return viewKernel{outShape: func(in []*tensor.Tensor) ([]int, error) {
		x := in[0]
		spec := attrShape
		if len(in) > 1 && in[1] != nil || spec == nil {
			s, err := intList(in, 1, "shape")
			if err != nil {
				return nil, err
			}
			spec = s
		}
		return reshapeTarget(x.Shape, spec, allowZero)
	}}, nil
}

// reshapeTarget resolves a Reshape shape spec (0 copies, -1 infers) for an
// input of shape from.
func reshapeTarget(from []int, spec []int64, allowZero bool) ([]int, error) {
	shape := make([]int, len(spec))
	infer := -1
	known := 1
	for i, d := range spec {
		switch {
		case d == -1:
			if infer >= 0 {
				return nil, fmt.Errorf("shape %v (input 1) has more than one -1", spec)
			}
			infer = i
			continue
		case d == 0 && !allowZero:
			if i >= len(from) {
				return nil, fmt.Errorf("shape %v (input 1) copies dimension %d with 0, but input 0 has shape %v", spec, i, from)
			}
			shape[i] = from[i]
		case d < 0:
			return nil, fmt.Errorf("shape %v (input 1) has negative dimension %d", spec, d)
		default:
			shape[i] = int(d)
		}
		known *= shape[i]
	}
	total := tensor.Size(from)
	if infer >= 0 {
		if known == 0 || total%known != 0 {
			return nil, fmt.Errorf("cannot reshape input 0 of shape %v (%d elements) to %v", from, total, spec)
		}
		shape[infer] = total / known
		known *= shape[infer]
	}
	if known != total {
		return nil, fmt.Errorf("cannot reshape input 0 of shape %v (%d elements) to %v (%d elements)", from, total, shape, known)
	}
	return shape, nil
}

func newFlatten(n *graph.Node, opset int) (op.Kernel, error) {
	axis := n.Int("axis", 1)
	return viewKernel{outShape: func(in []*tensor.Tensor) ([]int, error) {
		sh := in[0].Shape
		a := axis
		if a < 0 {
			a += int64(len(sh))
		}
		if a < 0 || a > int64(len(sh)) {
			return nil, fmt.Errorf("axis %d is out of range for input 0 of shape %v", axis, sh)
		}
		return []int{tensor.Size(sh[:a]), tensor.Size(sh[a:])}, nil
	}}, nil
}

// axesSource returns a function that yields a node's axes: from the axes
// attribute, or from input i when it is given (ONNX moved Squeeze's,
// Unsqueeze's and the reductions' axes to an input in opset 13).
func axesSource(n *graph.Node, i int) func(in []*tensor.Tensor) ([]int64, bool, error) {
	attr := n.Ints("axes", nil)
	has := n.Has("axes")
	return func(in []*tensor.Tensor) ([]int64, bool, error) {
		if op.Arg(in, i) != nil {
			a, err := intList(in, i, "axes")
			return a, true, err
		}
		return attr, has, nil
	}
}

func newSqueeze(n *graph.Node, opset int) (op.Kernel, error) {
	axes := axesSource(n, 1)
	return viewKernel{outShape: func(in []*tensor.Tensor) ([]int, error) {
		sh := in[0].Shape
		list, given, err := axes(in)
		if err != nil {
			return nil, err
		}
		drop := make([]bool, len(sh))
		if !given || len(list) == 0 {
			// No axes (or an empty list, as onnxruntime reads it): every
			// unit dimension goes.
			for d, v := range sh {
				drop[d] = v == 1
			}
		}
		for _, a := range list {
			d, err := op.NormAxis(a, len(sh))
			if err != nil {
				return nil, fmt.Errorf("squeeze axes %v for input 0 of shape %v: %v", list, sh, err)
			}
			if sh[d] != 1 {
				return nil, fmt.Errorf("cannot squeeze axis %d of input 0 of shape %v: its size is %d, not 1", a, sh, sh[d])
			}
			drop[d] = true
		}
		out := []int{}
		for d, v := range sh {
			if !drop[d] {
				out = append(out, v)
			}
		}
		return out, nil
	}}, nil
}

func newUnsqueeze(n *graph.Node, opset int) (op.Kernel, error) {
	axes := axesSource(n, 1)
	if opset < 13 && !n.Has("axes") {
		return nil, op.Errorf(n, "Unsqueeze before opset 13 needs the axes attribute")
	}
	return viewKernel{outShape: func(in []*tensor.Tensor) ([]int, error) {
		sh := in[0].Shape
		list, given, err := axes(in)
		if err != nil {
			return nil, err
		}
		if !given {
			return nil, fmt.Errorf("axes (input 1) is missing")
		}
		r := len(sh) + len(list)
		ins := make([]bool, r)
		for _, a := range list {
			d, err := op.NormAxis(a, r)
			if err != nil {
				return nil, fmt.Errorf("unsqueeze axes %v for input 0 of shape %v: %v", list, sh, err)
			}
			if ins[d] {
				return nil, fmt.Errorf("unsqueeze axes %v repeat axis %d", list, d)
			}
			ins[d] = true
		}
		out := make([]int, r)
		j := 0
		for d := range out {
			if ins[d] {
				out[d] = 1
				continue
			}
			out[d] = sh[j]
			j++
		}
		return out, nil
	}}, nil
}
