package mathops

import (
	"github.com/loupe-ml/loupe/internal/par"
	"github.com/loupe-ml/loupe/tensor"
)

// bcast is numpy broadcasting of several operands to one output shape.
// Adjacent dimensions are merged wherever every operand is laid out alike,
// so that loops run over the longest contiguous stretches possible: the
// innermost merged dimension has stride 1 or 0 in every operand.
type bcast struct {
	out  []int   // output shape
	n    int     // number of output elements
	dims []int   // merged dimensions, at least one
	st   [][]int // st[j][d]: stride of operand j along merged dimension d (0 when broadcast)
}

// broadcastShapes returns the common shape of several shapes.
func broadcastShapes(shapes ...[]int) ([]int, error) {
	out := shapes[0]
	for _, s := range shapes[1:] {
		var err error
		if out, err = tensor.BroadcastShape(out, s); err != nil {
			return nil, err
		}
	}
	return shapeOf(out), nil
}

// planBcast plans the broadcast of operands of the given shapes, which must
// broadcast to out.
func planBcast(out []int, shapes ...[]int) *bcast {
	k := len(shapes)
	full := make([][]int, k)
	for j, s := range shapes {
		full[j] = tensor.BroadcastStrides(s, out)
	}
	p := &bcast{out: out, n: tensor.Size(out), st: make([][]int, k)}
	for d, size := range out {
		if size == 1 {
			continue
		}
		if last := len(p.dims) - 1; last >= 0 {
			merge := true
			for j := range k {
				if p.st[j][last] != full[j][d]*size {
					merge = false
					break
				}
			}
			if merge {
				p.dims[last] *= size
				for j := range k {
					p.st[j][last] = full[j][d]
				}
				continue
			}
		}
		p.dims = append(p.dims, size)
		for j := range k {
			p.st[j] = append(p.st[j], full[j][d])
		}
	}
	if len(p.dims) == 0 {
		p.dims = []int{1}
		for j := range k {
			p.st[j] = []int{0}
		}
	}
	return p
}

// unit reports whether operand j is read contiguously along the innermost
// merged dimension (otherwise it is constant along it).
func (p *bcast) unit(j int) bool { return p.st[j][len(p.dims)-1] != 0 }

// walk calls fn for the output elements [lo, hi) in runs along the innermost
// merged dimension: run elements starting at output index o, and operand j
// starting at offs[j] (advancing by 1 if unit(j), else fixed). offs is
// reused between calls.
func (p *bcast) walk(lo, hi int, fn func(o int, offs []int, run int)) {
	if lo >= hi {
		return
	}
	r := len(p.dims)
	k := len(p.st)
	idx := make([]int, r)
	offs := make([]int, k)
	rem := lo
	for d := r - 1; d >= 0; d-- {
		idx[d] = rem % p.dims[d]
		rem /= p.dims[d]
	}
	for j := range k {
		s := 0
		for d, i := range idx {
			s += i * p.st[j][d]
		}
		offs[j] = s
	}
	inner := p.dims[r-1]
	for o := lo; o < hi; {
		run := min(inner-idx[r-1], hi-o)
		fn(o, offs, run)
		o += run
		idx[r-1] += run
		for j := range k {
			offs[j] += run * p.st[j][r-1]
		}
		for d := r - 1; d > 0 && idx[d] == p.dims[d]; d-- {
			idx[d] = 0
			idx[d-1]++
			for j := range k {
				offs[j] += p.st[j][d-1] - p.dims[d]*p.st[j][d]
			}
		}
	}
}

// run walks all output elements, on several goroutines when there are many;
// cost is the rough cost of one element.
func (p *bcast) run(cost int, fn func(o int, offs []int, run int)) {
	par.For(p.n, par.Grain(cost), func(lo, hi int) { p.walk(lo, hi, fn) })
}

// sumTo returns g summed down to shape (to which it was broadcast), with
// float64 accumulation. It returns g itself when the shapes are equal.
func sumTo(g *tensor.Tensor, shape []int) *tensor.Tensor {
	if tensor.SameShape(g.Shape, shape) {
		return g
	}
	out := tensor.New(shape...)
	acc := accumulate(g.F, g.Shape, shape, 1, 0, add64, add64, seqSum)
	for i, v := range acc {
		out.F[i] = float32(v)
	}
	return out
}

// expandTo returns src (float32) broadcast to shape, as a new tensor.
func expandTo(src *tensor.Tensor, shape []int) *tensor.Tensor {
	out := tensor.New(shape...)
	if out.Len() == 0 {
		return out
	}
	p := planBcast(shape, src.Shape)
	unit := p.unit(0)
	p.run(1, func(o int, offs []int, run int) {
		dst := out.F[o : o+run]
		if unit {
			copy(dst, src.F[offs[0]:offs[0]+run])
			return
		}
		v := src.F[offs[0]]
		for i := range dst {
			dst[i] = v
		}
	})
	return out
}
