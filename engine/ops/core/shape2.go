package core

import (
	"fmt"
	"math"

	"github.com/loupe-ml/loupe/engine/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// intsOf reads an int64 tensor input as ints.
func intsOf(t *tensor.Tensor, what string) ([]int64, error) {
	if t == nil {
		return nil, fmt.Errorf("%s is missing", what)
	}
	if t.DType != tensor.Int64 {
		return nil, fmt.Errorf("%s is %s, want int64", what, t.DType)
	}
	return t.I, nil
}

// gatherIndex copies element j of src into element o of dst (same dtype).
func gatherIndex(dst *tensor.Tensor, o int, src *tensor.Tensor, j int) {
	switch src.DType {
	case tensor.Float32:
		dst.F[o] = src.F[j]
	case tensor.Int64:
		dst.I[o] = src.I[j]
	default:
		dst.B[o] = src.B[j]
	}
}

type expand struct{}

func newExpand(n *graph.Node, opset int) (op.Kernel, error) { return expand{}, nil }

func (expand) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	spec, err := intsOf(in[1], "input 1 (shape)")
	if err != nil {
		return nil, err
	}
	s, err := tensor.BroadcastShape(in[0].Shape, ints(spec))
	if err != nil {
		return nil, err
	}
	y := tensor.Zeros(in[0].DType, s)
	broadcast2(in[0].Shape, s, s, func(o, i, _ int) { gatherIndex(y, o, in[0], i) })
	return []*tensor.Tensor{y}, nil
}

func (expand) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	g := make([]*tensor.Tensor, 2)
	if need[0] && gout[0] != nil {
		g[0] = tensor.SumTo(gout[0], in[0].Shape)
	}
	return g, nil
}

// slice is Slice (opset 10+: starts, ends, axes, steps as inputs).
type slice struct{}

func newSlice(n *graph.Node, opset int) (op.Kernel, error) {
	if opset < 10 {
		return nil, op.Errorf(n, "Slice before opset 10 is not supported")
	}
	return slice{}, nil
}

// plan returns, per dimension, start, step and count.
func (slice) plan(in []*tensor.Tensor) (start, step, count []int, err error) {
	x := in[0]
	r := x.Rank()
	starts, err := intsOf(in[1], "starts")
	if err != nil {
		return
	}
	ends, err := intsOf(in[2], "ends")
	if err != nil {
		return
	}
	if len(starts) != len(ends) {
		err = fmt.Errorf("%d starts and %d ends", len(starts), len(ends))
		return
	}
	axes := make([]int64, len(starts))
	for i := range axes {
		axes[i] = int64(i)
	}
	if len(in) > 3 && in[3] != nil {
		if axes, err = intsOf(in[3], "axes"); err != nil {
			return
		}
	}
	steps := make([]int64, len(starts))
	for i := range steps {
		steps[i] = 1
	}
	if len(in) > 4 && in[4] != nil {
		if steps, err = intsOf(in[4], "steps"); err != nil {
			return
		}
	}
	if len(axes) != len(starts) || len(steps) != len(starts) {
		err = fmt.Errorf("starts, ends, axes and steps differ in length")
		return
	}
	start, step, count = make([]int, r), make([]int, r), make([]int, r)
	for d := 0; d < r; d++ {
		step[d], count[d] = 1, x.Shape[d]
	}
	for i, a := range axes {
		d, e := axis(nil, a, r)
		if e != nil {
			err = e
			return
		}
		dim := int64(x.Shape[d])
		st, en, sp := starts[i], ends[i], steps[i]
		if sp == 0 {
			err = fmt.Errorf("step 0 on axis %d", d)
			return
		}
		if st < 0 {
			st += dim
		}
		if en < 0 {
			en += dim
		}
		if sp > 0 {
			st = min(max(st, 0), dim)
			en = min(max(en, 0), dim)
		} else {
			st = min(max(st, -1), dim-1)
			en = min(max(en, -1), dim-1)
		}
		c := int64(0)
		if sp > 0 && en > st {
			c = (en - st + sp - 1) / sp
		} else if sp < 0 && st > en {
			c = (st - en - sp - 1) / -sp
		}
		start[d], step[d], count[d] = int(st), int(sp), int(c)
	}
	return
}

func (s slice) each(x *tensor.Tensor, start, step, count []int, f func(o, i int)) {
	st := tensor.Strides(x.Shape)
	r := len(count)
	total := tensor.Size(count)
	idx := make([]int, r)
	for o := 0; o < total; o++ {
		i := 0
		for d := 0; d < r; d++ {
			i += (start[d] + idx[d]*step[d]) * st[d]
		}
		f(o, i)
		for d := r - 1; d >= 0; d-- {
			idx[d]++
			if idx[d] < count[d] {
				break
			}
			idx[d] = 0
		}
	}
}

func (s slice) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	start, step, count, err := s.plan(in)
	if err != nil {
		return nil, err
	}
	y := tensor.Zeros(in[0].DType, count)
	s.each(in[0], start, step, count, func(o, i int) { gatherIndex(y, o, in[0], i) })
	return []*tensor.Tensor{y}, nil
}

func (s slice) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	g := make([]*tensor.Tensor, len(in))
	if !need[0] || gout[0] == nil {
		return g, nil
	}
	start, step, count, err := s.plan(in)
	if err != nil {
		return nil, err
	}
	gx := tensor.New(in[0].Shape...)
	s.each(in[0], start, step, count, func(o, i int) { gx.F[i] += gout[0].F[o] })
	g[0] = gx
	return g, nil
}

// split is Split along an axis (sizes from the attribute before opset 13,
// from input 1 after, equal parts otherwise).
type split struct {
	axis  int64
	sizes []int64
	outs  int
}

func newSplit(n *graph.Node, opset int) (op.Kernel, error) {
	return split{axis: n.Int("axis", 0), sizes: n.Ints("split", nil), outs: len(n.Outputs)}, nil
}

func (s split) parts(in []*tensor.Tensor) (int, []int, error) {
	x := in[0]
	a, err := axis(nil, s.axis, x.Rank())
	if err != nil {
		return 0, nil, err
	}
	sizes := s.sizes
	if len(in) > 1 && in[1] != nil {
		if sizes, err = intsOf(in[1], "split"); err != nil {
			return 0, nil, err
		}
	}
	var out []int
	if sizes == nil {
		if s.outs == 0 || x.Shape[a]%s.outs != 0 {
			return 0, nil, fmt.Errorf("cannot split dimension %d of size %d into %d equal parts", a, x.Shape[a], s.outs)
		}
		for i := 0; i < s.outs; i++ {
			out = append(out, x.Shape[a]/s.outs)
		}
	} else {
		total := 0
		for _, v := range sizes {
			out = append(out, int(v))
			total += int(v)
		}
		if total != x.Shape[a] {
			return 0, nil, fmt.Errorf("split sizes %v do not add up to %d", sizes, x.Shape[a])
		}
	}
	return a, out, nil
}

func (s split) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	a, parts, err := s.parts(in)
	if err != nil {
		return nil, err
	}
	x := in[0]
	outer := tensor.Size(x.Shape[:a])
	inner := tensor.Size(x.Shape[a+1:])
	outs := make([]*tensor.Tensor, len(parts))
	off := 0
	for k, p := range parts {
		sh := append([]int(nil), x.Shape...)
		sh[a] = p
		y := tensor.Zeros(x.DType, sh)
		for o := 0; o < outer; o++ {
			for j := 0; j < p*inner; j++ {
				gatherIndex(y, o*p*inner+j, x, o*x.Shape[a]*inner+off*inner+j)
			}
		}
		outs[k] = y
		off += p
	}
	return outs, nil
}

func (s split) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	g := make([]*tensor.Tensor, len(in))
	if !need[0] {
		return g, nil
	}
	a, parts, err := s.parts(in)
	if err != nil {
		return nil, err
	}
	x := in[0]
	outer := tensor.Size(x.Shape[:a])
	inner := tensor.Size(x.Shape[a+1:])
	gx := tensor.New(x.Shape...)
	off := 0
	for k, p := range parts {
		if k < len(gout) && gout[k] != nil {
			for o := 0; o < outer; o++ {
				copy(gx.F[o*x.Shape[a]*inner+off*inner:], gout[k].F[o*p*inner:(o+1)*p*inner])
			}
		}
		off += p
	}
	g[0] = gx
	return g, nil
}

// cast is Cast to float, int64 or bool.
type cast struct{ to tensor.DType }

func newCast(n *graph.Node, opset int) (op.Kernel, error) {
	switch n.Int("to", 0) {
	case 1, 10, 11, 16:
		return cast{tensor.Float32}, nil
	case 2, 3, 4, 5, 6, 7, 12, 13:
		return cast{tensor.Int64}, nil
	case 9:
		return cast{tensor.Bool}, nil
	}
	return nil, op.Errorf(n, "Cast to type %d is not supported", n.Int("to", 0))
}

func (c cast) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	x := in[0]
	switch c.to {
	case tensor.Float32:
		return []*tensor.Tensor{x.AsFloat32()}, nil
	case tensor.Int64:
		return []*tensor.Tensor{x.AsInt64()}, nil
	}
	y := tensor.NewBool(x.Shape...)
	for i := range y.B {
		y.B[i] = x.Float64At(i) != 0
	}
	return []*tensor.Tensor{y}, nil
}

func (c cast) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	if need[0] && c.to == tensor.Float32 && in[0].DType == tensor.Float32 {
		return []*tensor.Tensor{gout[0]}, nil
	}
	return []*tensor.Tensor{nil}, nil
}

type constantOfShape struct{ v *tensor.Tensor }

func newConstantOfShape(n *graph.Node, opset int) (op.Kernel, error) {
	v := n.Tensor("value")
	if v == nil {
		v = tensor.Scalar(0)
	}
	if v.Len() != 1 {
		return nil, op.Errorf(n, "value must hold one element")
	}
	return constantOfShape{v}, nil
}

func (c constantOfShape) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	spec, err := intsOf(in[0], "input 0 (shape)")
	if err != nil {
		return nil, err
	}
	for _, d := range spec {
		if d < 0 || d > 1<<31 {
			return nil, fmt.Errorf("invalid dimension %d in shape %v", d, spec)
		}
	}
	y := tensor.Zeros(c.v.DType, ints(spec))
	for i := 0; i < y.Len(); i++ {
		gatherIndex(y, i, c.v, 0)
	}
	return []*tensor.Tensor{y}, nil
}

type rangeOp struct{}

func newRange(n *graph.Node, opset int) (op.Kernel, error) { return rangeOp{}, nil }

func (rangeOp) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	for i := 0; i < 3; i++ {
		if in[i] == nil || in[i].Len() != 1 {
			return nil, fmt.Errorf("input %d of Range must be a scalar", i)
		}
	}
	st, lim, d := in[0].Float64At(0), in[1].Float64At(0), in[2].Float64At(0)
	if d == 0 {
		return nil, fmt.Errorf("Range with delta 0")
	}
	n := int(math.Max(math.Ceil((lim-st)/d), 0))
	if n > 1<<31 {
		return nil, fmt.Errorf("Range of %d elements", n)
	}
	y := tensor.Zeros(in[0].DType, []int{n})
	for i := 0; i < n; i++ {
		v := st + float64(i)*d
		if y.DType == tensor.Int64 {
			y.I[i] = int64(v)
		} else {
			y.F[i] = float32(v)
		}
	}
	return []*tensor.Tensor{y}, nil
}
