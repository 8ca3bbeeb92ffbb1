package shapeops

import (
	"fmt"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/internal/par"
	"github.com/loupe-ml/loupe/tensor"
)

// elem is the set of element types a tensor can hold.
type elem interface {
	~float32 | ~int64 | ~bool
}

// dataGrad is the Backward of an op whose outputs are made of elements of
// input 0 (moved, repeated or masked): when input 0's gradient is wanted
// and input 0 is float32, fill checks the inputs and adds the output
// gradients into g, zero at first, which becomes that gradient. The other
// inputs (indices, shapes) get none.
func dataGrad(in []*tensor.Tensor, need []bool, fill func(g []float32) error) ([]*tensor.Tensor, error) {
	grads := make([]*tensor.Tensor, len(in))
	x := in[0]
	if !op.Needs(need, 0) || x.DType != tensor.Float32 {
		return grads, nil
	}
	g := tensor.New(x.Shape...)
	if err := fill(g.F); err != nil {
		return nil, err
	}
	grads[0] = g
	return grads, nil
}

// intList reads input i, an int64 tensor of rank 0 or 1 (shapes, axes,
// indices given as inputs).
func intList(in []*tensor.Tensor, i int, what string) ([]int64, error) {
	t, err := op.AnyArg(in, i)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", what, err)
	}
	if t.DType != tensor.Int64 {
		return nil, fmt.Errorf("input %d (%s) is %s, want int64", i, what, t.DType)
	}
	if t.Rank() > 1 {
		return nil, fmt.Errorf("input %d (%s) has shape %v, want a 1-D tensor", i, what, t.Shape)
	}
	return t.I, nil
}

// scalarOf reads element 0 of a one-element tensor as float64 and int64.
func scalarOf(t *tensor.Tensor, i int, what string) (float64, int64, error) {
	if t == nil {
		return 0, 0, fmt.Errorf("input %d (%s) is missing", i, what)
	}
	if err := t.Check(); err != nil {
		return 0, 0, fmt.Errorf("input %d (%s): %v", i, what, err)
	}
	if t.Len() != 1 {
		return 0, 0, fmt.Errorf("input %d (%s) has shape %v, want a scalar", i, what, t.Shape)
	}
	if t.DType == tensor.Int64 {
		return float64(t.I[0]), t.I[0], nil
	}
	v := t.Float64At(0)
	return v, int64(v), nil
}

// like returns a new zero tensor of dtype dt and the given shape (copied).
func like(dt tensor.DType, shape []int) *tensor.Tensor {
	return tensor.Zeros(dt, shape)
}

// copyShape returns a copy of s that is never nil.
func copyShape(s []int) []int {
	return append([]int{}, s...)
}

// withShape returns a copy of t's data under another shape (same size).
func withShape(t *tensor.Tensor, shape []int) *tensor.Tensor {
	r := &tensor.Tensor{DType: t.DType, Shape: copyShape(shape)}
	switch t.DType {
	case tensor.Float32:
		r.F = append([]float32{}, t.F...)
	case tensor.Int64:
		r.I = append([]int64{}, t.I...)
	case tensor.Bool:
		r.B = append([]bool{}, t.B...)
	}
	return r
}

// view returns t's data, shared, under another shape (for gradients, which
// the engine never modifies in place).
func view(t *tensor.Tensor, shape []int) *tensor.Tensor {
	r := *t
	r.Shape = copyShape(shape)
	return &r
}

// strided describes a strided read of a source buffer: element i of an
// output of shape shape comes from src[base + sum_d idx_d*strides[d]].
// Strides may be zero (broadcast) or negative (reversed slices).
type strided struct {
	shape   []int
	strides []int
	base    int
}

// simplify drops unit dimensions and merges dimensions that are contiguous
// in the source, leaving at least one dimension.
func (s strided) simplify() strided {
	var sh, st []int
	for d, n := range s.shape {
		if n == 1 {
			continue
		}
		if k := len(sh) - 1; k >= 0 && st[k] == s.strides[d]*n {
			sh[k] *= n
			st[k] = s.strides[d]
			continue
		}
		sh = append(sh, n)
		st = append(st, s.strides[d])
	}
	if len(sh) == 0 {
		sh, st = []int{1}, []int{0}
	}
	return strided{shape: sh, strides: st, base: s.base}
}

// gatherStrided fills dst (of the view's size) from src through the view,
// in parallel for large outputs.
func gatherStrided[T elem](dst, src []T, v strided) {
	v = v.simplify()
	r := len(v.shape)
	n := v.shape[r-1]
	if n == 0 || len(dst) == 0 {
		return
	}
	rows := len(dst) / n
	par.For(rows, par.Grain(n), func(lo, hi int) {
		walkRows(v, lo, hi, func(row, off int) {
			out := dst[row*n : row*n+n]
			switch s := v.strides[r-1]; s {
			case 1:
				copy(out, src[off:off+n])
			case 0:
				x := src[off]
				for j := range out {
					out[j] = x
				}
			default:
				p := off
				for j := range out {
					out[j] = src[p]
					p += s
				}
			}
		})
	})
}

// scatterAddStrided adds src (of the view's size) into dst through the view:
// the transpose of gatherStrided. It runs in parallel only when distinct is
// set: no two view elements share a destination.
func scatterAddStrided(dst, src []float32, v strided, distinct bool) {
	v = v.simplify()
	r := len(v.shape)
	n := v.shape[r-1]
	if n == 0 || len(src) == 0 {
		return
	}
	rows := len(src) / n
	body := func(lo, hi int) {
		walkRows(v, lo, hi, func(row, off int) {
			in := src[row*n : row*n+n]
			switch s := v.strides[r-1]; s {
			case 1:
				out := dst[off : off+n]
				for j, x := range in {
					out[j] += x
				}
			case 0:
				var acc float32
				for _, x := range in {
					acc += x
				}
				dst[off] += acc
			default:
				p := off
				for _, x := range in {
					dst[p] += x
					p += s
				}
			}
		})
	}
	if distinct {
		par.For(rows, par.Grain(n), body)
	} else {
		body(0, rows)
	}
}

// walkRows calls fn for rows lo..hi-1 of a simplified view (a row being
// the last dimension) with the source offset of the row's first element.
func walkRows(v strided, lo, hi int, fn func(row, off int)) {
	r := len(v.shape)
	idx := make([]int, r)
	off := v.base
	rem := lo
	for d := r - 2; d >= 0; d-- {
		idx[d] = rem % v.shape[d]
		rem /= v.shape[d]
		off += idx[d] * v.strides[d]
	}
	for row := lo; row < hi; row++ {
		fn(row, off)
		for d := r - 2; d >= 0; d-- {
			idx[d]++
			off += v.strides[d]
			if idx[d] < v.shape[d] {
				break
			}
			off -= v.strides[d] * v.shape[d]
			idx[d] = 0
		}
	}
}

// gatherAny applies gatherStrided to whichever data slice t holds, into a
// new tensor of the view's shape (outShape).
func gatherAny(t *tensor.Tensor, v strided, outShape []int) *tensor.Tensor {
	out := like(t.DType, outShape)
	switch t.DType {
	case tensor.Float32:
		gatherStrided(out.F, t.F, v)
	case tensor.Int64:
		gatherStrided(out.I, t.I, v)
	case tensor.Bool:
		gatherStrided(out.B, t.B, v)
	}
	return out
}
