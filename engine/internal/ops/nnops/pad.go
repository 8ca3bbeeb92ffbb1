package nnops

import (
	"fmt"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// pad is the Pad kernel: constant, reflect or edge padding; negative pads
// crop.
type pad struct {
	mode  string
	pads  []int // opset < 11: the pads attribute
	value float32
	attrs bool // pads and value come from attributes (opset < 11)
}

func newPad(n *graph.Node, opset int) (op.Kernel, error) {
	k := &pad{mode: n.Str("mode", "constant"), attrs: opset < 11}
	switch k.mode {
	case "constant", "reflect", "edge":
	default:
		return nil, op.Errorf(n, "unsupported mode %q", k.mode)
	}
	if k.attrs {
		k.pads = toInts(n.Ints("pads", nil))
		if k.pads == nil {
			k.pads = toInts(n.Ints("paddings", nil))
		}
		if k.pads == nil {
			return nil, op.Errorf(n, "pads attribute is required before opset 11")
		}
		k.value = n.Float("value", 0)
	}
	return k, nil
}

// padPlan maps the output of a Pad onto its input, one axis at a time.
type padPlan struct {
	shape []int   // output shape
	maps  [][]int // per axis, the input index each output index copies (-1: the constant)
	xs    []int   // input shape
}

// plan resolves the pads of one call.
func (k *pad) plan(in []*tensor.Tensor) (*padPlan, error) {
	x := op.Arg(in, 0)
	if x == nil {
		return nil, fmt.Errorf("input 0 is missing")
	}
	if err := x.Check(); err != nil {
		return nil, fmt.Errorf("input 0: %v", err)
	}
	r := x.Rank()
	pb, pe := make([]int, r), make([]int, r)
	pads := k.pads
	var axes []int
	if !k.attrs {
		p := op.Arg(in, 1)
		if p == nil {
			return nil, fmt.Errorf("input 1 (pads) is missing")
		}
		if p.DType != tensor.Int64 || p.Rank() != 1 || len(p.I) != p.Len() {
			return nil, fmt.Errorf("input 1 (pads) is %s%v, want a 1-D int64 tensor", p.DType, p.Shape)
		}
		pads = toInts(p.I)
		if a := op.Arg(in, 3); a != nil {
			if a.DType != tensor.Int64 || a.Rank() != 1 || len(a.I) != a.Len() {
				return nil, fmt.Errorf("input 3 (axes) is %s%v, want a 1-D int64 tensor", a.DType, a.Shape)
			}
			for _, v := range a.I {
				ax := int(v)
				if ax < 0 {
					ax += r
				}
				if ax < 0 || ax >= r {
					return nil, fmt.Errorf("input 3 (axes) holds axis %d, out of range for input 0 of shape %v", v, x.Shape)
				}
				axes = append(axes, ax)
			}
		}
	}
	if axes == nil {
		axes = make([]int, r)
		for i := range axes {
			axes[i] = i
		}
	}
	if len(pads) != 2*len(axes) {
		return nil, fmt.Errorf("pads %v has %d values, want %d for input 0 of shape %v", pads, len(pads), 2*len(axes), x.Shape)
	}
	for i, a := range axes {
		pb[a], pe[a] = pads[i], pads[i+len(axes)]
	}
	shape := make([]int, r)
	maps := make([][]int, r)
	for a := 0; a < r; a++ {
		n := x.Shape[a]
		shape[a] = n + pb[a] + pe[a]
		if shape[a] < 0 {
			return nil, fmt.Errorf("pads %v crop more than the %d elements of axis %d of input 0 (shape %v)", pads, n, a, x.Shape)
		}
		if n == 0 && shape[a] > 0 && k.mode != "constant" {
			return nil, fmt.Errorf("cannot %s-pad the empty axis %d of input 0 (shape %v)", k.mode, a, x.Shape)
		}
		m := make([]int, shape[a])
		for o := range m {
			j := o - pb[a]
			if j < 0 || j >= n {
				switch k.mode {
				case "constant":
					j = -1
				case "edge":
					j = min(max(j, 0), n-1)
				case "reflect":
					if n == 1 {
						j = 0
					} else {
						period := 2 * (n - 1)
						j %= period
						if j < 0 {
							j += period
						}
						if j >= n {
							j = period - j
						}
					}
				}
			}
			m[o] = j
		}
		maps[a] = m
	}
	return &padPlan{shape: shape, maps: maps, xs: x.Shape}, nil
}

// rows calls fn(o, s, m) for every run of the output along its last axis:
// o is the run's offset in the output, s the offset in the input of the
// row it copies from, or -1 when the whole run is the constant, and m the
// last axis' map. A scalar is one run of one element.
func (p *padPlan) rows(fn func(o, s int, m []int)) {
	r := len(p.shape)
	if r == 0 {
		fn(0, 0, []int{0})
		return
	}
	if tensor.Size(p.shape) == 0 {
		return
	}
	st := tensor.Strides(p.xs)
	last := p.maps[r-1]
	idx := make([]int, r-1)
	for o := 0; o < tensor.Size(p.shape); o += len(last) {
		s := 0
		for a, i := range idx {
			j := p.maps[a][i]
			if j < 0 {
				s = -1
				break
			}
			s += j * st[a]
		}
		fn(o, s, last)
		for a := r - 2; a >= 0; a-- {
			idx[a]++
			if idx[a] < p.shape[a] {
				break
			}
			idx[a] = 0
		}
	}
}

// padRows fills y from x by the plan, with fill for the constant.
func padRows[T any](p *padPlan, x, y []T, fill T) {
	p.rows(func(o, s int, m []int) {
		row := y[o : o+len(m)]
		if s < 0 {
			for i := range row {
				row[i] = fill
			}
			return
		}
		for i, j := range m {
			if j < 0 {
				row[i] = fill
			} else {
				row[i] = x[s+j]
			}
		}
	})
}

// constant returns the fill value for data of dtype dt.
func (k *pad) constant(in []*tensor.Tensor, dt tensor.DType) (float32, int64, bool, error) {
	if k.attrs {
		return k.value, int64(k.value), k.value != 0, nil
	}
	c := op.Arg(in, 2)
	if c == nil || c.Len() == 0 {
		return 0, 0, false, nil
	}
	if c.Len() != 1 || c.Check() != nil {
		return 0, 0, false, fmt.Errorf("input 2 (constant_value) has shape %v, want one value", c.Shape)
	}
	if c.DType != dt {
		return 0, 0, false, fmt.Errorf("input 2 (constant_value) is %s but input 0 is %s", c.DType, dt)
	}
	switch dt {
	case tensor.Float32:
		return c.F[0], 0, false, nil
	case tensor.Int64:
		return 0, c.I[0], false, nil
	}
	return 0, 0, c.B[0], nil
}

func (k *pad) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	p, err := k.plan(in)
	if err != nil {
		return nil, err
	}
	x := in[0]
	f, i, b, err := k.constant(in, x.DType)
	if err != nil {
		return nil, err
	}
	y := tensor.Zeros(x.DType, p.shape)
	switch x.DType {
	case tensor.Float32:
		padRows(p, x.F, y.F, f)
	case tensor.Int64:
		padRows(p, x.I, y.I, i)
	default:
		padRows(p, x.B, y.B, b)
	}
	return []*tensor.Tensor{y}, nil
}

func (k *pad) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	grads := make([]*tensor.Tensor, len(in))
	x := op.Arg(in, 0)
	if x == nil || x.DType != tensor.Float32 {
		return grads, nil
	}
	wantX := op.Needs(need, 0)
	c := op.Arg(in, 2)
	wantC := !k.attrs && op.Needs(need, 2) && c != nil && c.DType == tensor.Float32 && c.Len() == 1
	if !wantX && !wantC {
		return grads, nil
	}
	p, err := k.plan(in)
	if err != nil {
		return nil, err
	}
	gy, err := op.ShapedGrad(gout, 0, p.shape)
	if err != nil {
		return nil, err
	}
	var gx *tensor.Tensor
	if wantX {
		gx = tensor.New(x.Shape...)
		grads[0] = gx
	}
	var sc float64
	if gy != nil {
		p.rows(func(o, s int, m []int) {
			row := gy.F[o : o+len(m)]
			for i, j := range m {
				if s < 0 || j < 0 {
					sc += float64(row[i])
				} else if gx != nil {
					gx.F[s+j] += row[i]
				}
			}
		})
	}
	if wantC {
		gc := tensor.New(c.Shape...)
		if k.mode == "constant" {
			gc.F[0] = float32(sc)
		}
		grads[2] = gc
	}
	return grads, nil
}
