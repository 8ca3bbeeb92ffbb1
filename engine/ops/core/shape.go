package core

import (
	"fmt"

	"github.com/loupe-ml/loupe/engine/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// view returns t with another shape, sharing its data.
func view(t *tensor.Tensor, shape []int) *tensor.Tensor {
	r := *t
	r.Shape = shape
	return &r
}

// reshapeGrad returns the gradient of a reshape: gout viewed as the input.
func reshapeGrad(in, gout []*tensor.Tensor, need []bool) []*tensor.Tensor {
	g := make([]*tensor.Tensor, len(in))
	if need[0] && gout[0] != nil {
		g[0] = view(gout[0], in[0].Shape)
	}
	return g
}

type flatten struct{ axis int64 }

func newFlatten(n *graph.Node, opset int) (op.Kernel, error) {
	return flatten{n.Int("axis", 1)}, nil
}

func (f flatten) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	x := in[0]
	a := int(f.axis)
	if a < 0 {
		a += x.Rank()
	}
	if a < 0 || a > x.Rank() {
		return nil, fmt.Errorf("axis %d out of range for shape %v", f.axis, x.Shape)
	}
	return []*tensor.Tensor{view(x, []int{tensor.Size(x.Shape[:a]), tensor.Size(x.Shape[a:])})}, nil
}

func (f flatten) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	return reshapeGrad(in, gout, need), nil
}

type reshape struct{ allowZero bool }

func newReshape(n *graph.Node, opset int) (op.Kernel, error) {
	return reshape{n.Int("allowzero", 0) != 0}, nil
}

func (r reshape) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	if len(in) < 2 || in[1] == nil || in[1].DType != tensor.Int64 {
		return nil, fmt.Errorf("input 1 (shape) must be an int64 tensor")
	}
	x := in[0]
	spec := in[1].I
	shape := make([]int, len(spec))
	infer := -1
	known := 1
	for i, d := range spec {
		switch {
		case d == 0 && !r.allowZero:
			if i >= x.Rank() {
				return nil, fmt.Errorf("shape %v copies dimension %d of input shape %v, which has none", spec, i, x.Shape)
			}
			shape[i] = x.Shape[i]
		case d == -1:
			if infer >= 0 {
				return nil, fmt.Errorf("shape %v has more than one -1", spec)
			}
			infer = i
			continue
		case d < 0:
			return nil, fmt.Errorf("shape %v has a negative dimension", spec)
		default:
			shape[i] = int(d)
		}
		known *= shape[i]
	}
	if infer >= 0 {
		if known == 0 || x.Len()%known != 0 {
			return nil, fmt.Errorf("cannot reshape %v to %v", x.Shape, spec)
		}
		shape[infer] = x.Len() / known
	}
	if tensor.Size(shape) != x.Len() {
		return nil, fmt.Errorf("cannot reshape %v (%d elements) to %v", x.Shape, x.Len(), shape)
	}
	return []*tensor.Tensor{view(x, shape)}, nil
}

func (r reshape) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	return reshapeGrad(in, gout, need), nil
}

type squeeze struct {
	axes  []int64
	input bool // axes come as input 1 (opset 13)
	add   bool // Unsqueeze
}

func newSqueeze(n *graph.Node, opset int) (op.Kernel, error) {
	return squeeze{axes: n.Ints("axes", nil), input: opset >= 13}, nil
}

func newUnsqueeze(n *graph.Node, opset int) (op.Kernel, error) {
	return squeeze{axes: n.Ints("axes", nil), input: opset >= 13, add: true}, nil
}

func (s squeeze) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	x := in[0]
	axes := s.axes
	if s.input && len(in) > 1 && in[1] != nil {
		axes = in[1].I
	}
	if s.add {
		r := x.Rank() + len(axes)
		ax, err := sortedAxes(axes, r)
		if err != nil {
			return nil, err
		}
		shape := make([]int, 0, r)
		j := 0
		for d := 0; d < r; d++ {
			if len(ax) > 0 && ax[0] == d {
				shape = append(shape, 1)
				ax = ax[1:]
				continue
			}
			shape = append(shape, x.Shape[j])
			j++
		}
		return []*tensor.Tensor{view(x, shape)}, nil
	}
	drop := make([]bool, x.Rank())
	if len(axes) == 0 {
		for d, n := range x.Shape {
			drop[d] = n == 1
		}
	}
	for _, a := range axes {
		d, err := axis(nil, a, x.Rank())
		if err != nil {
			return nil, err
		}
		if x.Shape[d] != 1 {
			return nil, fmt.Errorf("cannot squeeze dimension %d of shape %v", d, x.Shape)
		}
		drop[d] = true
	}
	shape := []int{}
	for d, n := range x.Shape {
		if !drop[d] {
			shape = append(shape, n)
		}
	}
	return []*tensor.Tensor{view(x, shape)}, nil
}

func (s squeeze) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	return reshapeGrad(in, gout, need), nil
}

type transpose struct{ perm []int64 }

func newTranspose(n *graph.Node, opset int) (op.Kernel, error) {
	return transpose{n.Ints("perm", nil)}, nil
}

func (t transpose) permFor(r int) ([]int, error) {
	p := make([]int, r)
	if t.perm == nil {
		for i := range p {
			p[i] = r - 1 - i
		}
		return p, nil
	}
	if len(t.perm) != r {
		return nil, fmt.Errorf("perm %v for a tensor of rank %d", t.perm, r)
	}
	seen := make([]bool, r)
	for i, v := range t.perm {
		if v < 0 || int(v) >= r || seen[v] {
			return nil, fmt.Errorf("perm %v is not a permutation", t.perm)
		}
		seen[v] = true
		p[i] = int(v)
	}
	return p, nil
}

// permute returns x with dimensions reordered: out dim i is x dim p[i].
func permute(x *tensor.Tensor, p []int) *tensor.Tensor {
	r := x.Rank()
	shape := make([]int, r)
	for i := range p {
		shape[i] = x.Shape[p[i]]
	}
	out := tensor.Zeros(x.DType, shape)
	xs := tensor.Strides(x.Shape)
	st := make([]int, r)
	for i := range p {
		st[i] = xs[p[i]]
	}
	idx := make([]int, r)
	src := 0
	n := out.Len()
	for o := 0; o < n; o++ {
		switch x.DType {
		case tensor.Float32:
			out.F[o] = x.F[src]
		case tensor.Int64:
			out.I[o] = x.I[src]
		default:
			out.B[o] = x.B[src]
		}
		for d := r - 1; d >= 0; d-- {
			idx[d]++
			src += st[d]
			if idx[d] < shape[d] {
				break
			}
			src -= st[d] * idx[d]
			idx[d] = 0
		}
	}
	return out
}

func (t transpose) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	p, err := t.permFor(in[0].Rank())
	if err != nil {
		return nil, err
	}
	return []*tensor.Tensor{permute(in[0], p)}, nil
}

func (t transpose) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	if !need[0] || gout[0] == nil {
		return []*tensor.Tensor{nil}, nil
	}
	p, err := t.permFor(in[0].Rank())
	if err != nil {
		return nil, err
	}
	inv := make([]int, len(p))
	for i, v := range p {
		inv[v] = i
	}
	return []*tensor.Tensor{permute(gout[0], inv)}, nil
}

type concat struct{ axis int64 }

func newConcat(n *graph.Node, opset int) (op.Kernel, error) {
	if !n.Has("axis") {
		return nil, op.Errorf(n, "Concat needs an axis attribute")
	}
	return concat{n.Int("axis", 0)}, nil
}

func (c concat) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	if len(in) == 0 || in[0] == nil {
		return nil, fmt.Errorf("no inputs")
	}
	a, err := axis(nil, c.axis, in[0].Rank())
	if err != nil {
		return nil, err
	}
	shape := append([]int(nil), in[0].Shape...)
	shape[a] = 0
	for i, x := range in {
		if x == nil || x.DType != in[0].DType || x.Rank() != len(shape) {
			return nil, fmt.Errorf("input %d does not match input 0 (%s%v)", i, in[0].DType, in[0].Shape)
		}
		for d := range shape {
			if d != a && x.Shape[d] != in[0].Shape[d] {
				return nil, fmt.Errorf("input %d has shape %v, input 0 has %v: they differ outside axis %d", i, x.Shape, in[0].Shape, a)
			}
		}
		shape[a] += x.Shape[a]
	}
	out := tensor.Zeros(in[0].DType, shape)
	outer := tensor.Size(shape[:a])
	inner := tensor.Size(shape[a+1:])
	off := 0
	for _, x := range in {
		w := x.Shape[a] * inner
		for o := 0; o < outer; o++ {
			dst := o*shape[a]*inner + off
			switch x.DType {
			case tensor.Float32:
				copy(out.F[dst:dst+w], x.F[o*w:(o+1)*w])
			case tensor.Int64:
				copy(out.I[dst:dst+w], x.I[o*w:(o+1)*w])
			default:
				copy(out.B[dst:dst+w], x.B[o*w:(o+1)*w])
			}
		}
		off += w
	}
	return []*tensor.Tensor{out}, nil
}

func (c concat) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	grads := make([]*tensor.Tensor, len(in))
	g := gout[0]
	if g == nil || in[0].DType != tensor.Float32 {
		return grads, nil
	}
	a, _ := axis(nil, c.axis, g.Rank())
	outer := tensor.Size(g.Shape[:a])
	inner := tensor.Size(g.Shape[a+1:])
	off := 0
	for i, x := range in {
		w := x.Shape[a] * inner
		if need[i] {
			gx := tensor.New(x.Shape...)
			for o := 0; o < outer; o++ {
				src := o*g.Shape[a]*inner + off
				copy(gx.F[o*w:(o+1)*w], g.F[src:src+w])
			}
			grads[i] = gx
		}
		off += w
	}
	return grads, nil
}

type gather struct{ axis int64 }

func newGather(n *graph.Node, opset int) (op.Kernel, error) {
	return gather{n.Int("axis", 0)}, nil
}

// plan checks the indices and returns (outer, axis length, inner, indices).
func (g gather) plan(in []*tensor.Tensor) (int, int, int, []int, []int, error) {
	if len(in) < 2 || in[0] == nil || in[1] == nil {
		return 0, 0, 0, nil, nil, fmt.Errorf("Gather needs data and indices")
	}
	x, ix := in[0], in[1]
	if ix.DType != tensor.Int64 {
		return 0, 0, 0, nil, nil, fmt.Errorf("indices are %s, want int64", ix.DType)
	}
	a, err := axis(nil, g.axis, x.Rank())
	if err != nil {
		return 0, 0, 0, nil, nil, err
	}
	n := x.Shape[a]
	idx := make([]int, len(ix.I))
	for i, v := range ix.I {
		if v < -int64(n) || v >= int64(n) {
			return 0, 0, 0, nil, nil, fmt.Errorf("index %d out of range for axis %d of size %d", v, a, n)
		}
		if v < 0 {
			v += int64(n)
		}
		idx[i] = int(v)
	}
	shape := append(append(append([]int(nil), x.Shape[:a]...), ix.Shape...), x.Shape[a+1:]...)
	return tensor.Size(x.Shape[:a]), n, tensor.Size(x.Shape[a+1:]), idx, shape, nil
}

func (g gather) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	outer, n, inner, idx, shape, err := g.plan(in)
	if err != nil {
		return nil, err
	}
	x := in[0]
	out := tensor.Zeros(x.DType, shape)
	k := len(idx)
	for o := 0; o < outer; o++ {
		for j, v := range idx {
			src := (o*n + v) * inner
			dst := (o*k + j) * inner
			switch x.DType {
			case tensor.Float32:
				copy(out.F[dst:dst+inner], x.F[src:src+inner])
			case tensor.Int64:
				copy(out.I[dst:dst+inner], x.I[src:src+inner])
			default:
				copy(out.B[dst:dst+inner], x.B[src:src+inner])
			}
		}
	}
	return []*tensor.Tensor{out}, nil
}

func (g gather) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	grads := make([]*tensor.Tensor, len(in))
	if !need[0] || gout[0] == nil {
		return grads, nil
	}
	outer, n, inner, idx, _, err := g.plan(in)
	if err != nil {
		return nil, err
	}
	gx := tensor.New(in[0].Shape...)
	k := len(idx)
	for o := 0; o < outer; o++ {
		for j, v := range idx {
			dst := (o*n + v) * inner
			src := (o*k + j) * inner
			for e := 0; e < inner; e++ {
				gx.F[dst+e] += gout[0].F[src+e]
			}
		}
	}
	grads[0] = gx
	return grads, nil
}

type shapeOp struct{ start, end int64 }

func newShape(n *graph.Node, opset int) (op.Kernel, error) {
	return shapeOp{n.Int("start", 0), n.Int("end", 1<<62)}, nil
}

func (s shapeOp) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	r := int64(in[0].Rank())
	clamp := func(v int64) int64 {
		if v < 0 {
			v += r
		}
		return min(max(v, 0), r)
	}
	lo, hi := clamp(s.start), clamp(s.end)
	out := tensor.NewInt(int(max(hi-lo, 0)))
	for i := lo; i < hi; i++ {
		out.I[i-lo] = int64(in[0].Shape[i])
	}
	return []*tensor.Tensor{out}, nil
}

type constant struct{ t *tensor.Tensor }

func newConstant(n *graph.Node, opset int) (op.Kernel, error) {
	switch {
	case n.Tensor("value") != nil:
		return constant{n.Tensor("value")}, nil
	case n.Has("value_float"):
		return constant{tensor.Scalar(n.Float("value_float", 0))}, nil
	case n.Has("value_int"):
		return constant{tensor.ScalarInt(n.Int("value_int", 0))}, nil
	case n.Has("value_floats"):
		v := n.Floats("value_floats", nil)
		t, _ := tensor.FromFloat32(append([]float32(nil), v...), len(v))
		return constant{t}, nil
	case n.Has("value_ints"):
		v := n.Ints("value_ints", nil)
		t, _ := tensor.FromInt64(append([]int64(nil), v...), len(v))
		return constant{t}, nil
	}
	return nil, op.Errorf(n, "Constant has no supported value attribute")
}

func (c constant) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	return []*tensor.Tensor{c.t}, nil
}
