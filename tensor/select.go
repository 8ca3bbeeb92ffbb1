package tensor

import "fmt"

// Example returns example e of a batch t ([N, ...]) as a tensor of the
// remaining dimensions, sharing t's data (a change to one shows in the
// other): the usual way to draw one example's attributions, which come
// batch first, with viz. It returns an error when t is a scalar or e is
// not in [0, N).
func (t *Tensor) Example(e int) (*Tensor, error) {
	if t == nil || t.Rank() == 0 {
		return nil, fmt.Errorf("tensor: example %d of a scalar: want a batch [N, ...]", e)
	}
	if e < 0 || e >= t.Shape[0] {
		return nil, fmt.Errorf("tensor: example %d of a batch of %d (shape %v)", e, t.Shape[0], t.Shape)
	}
	n := Size(t.Shape[1:])
	out := &Tensor{DType: t.DType, Shape: append([]int(nil), t.Shape[1:]...)}
	switch t.DType {
	case Float32:
		out.F = t.F[e*n : (e+1)*n : (e+1)*n]
	case Int64:
		out.I = t.I[e*n : (e+1)*n : (e+1)*n]
	case Bool:
		out.B = t.B[e*n : (e+1)*n : (e+1)*n]
	default:
		return nil, fmt.Errorf("tensor: example of a tensor of type %v", t.DType)
	}
	return out, nil
}

// Batch concatenates batches ([N_i, ...], the same type and the same
// dimensions after the first) along their first dimension into a new
// tensor [sum N_i, ...]: several inputs read one by one made into one
// batch. Errors name the first tensor that does not fit.
func Batch(ts ...*Tensor) (*Tensor, error) {
	if len(ts) == 0 {
		return nil, fmt.Errorf("tensor: no tensors to batch")
	}
	first := ts[0]
	if first == nil || first.Rank() == 0 {
		return nil, fmt.Errorf("tensor: batch of a scalar: want tensors [N, ...]")
	}
	n := 0
	for i, t := range ts {
		if t == nil || t.DType != first.DType || t.Rank() != first.Rank() || !SameShape(t.Shape[1:], first.Shape[1:]) {
			var shape []int
			var dt DType
			if t != nil {
				shape, dt = t.Shape, t.DType
			}
			return nil, fmt.Errorf("tensor: batch member %d has shape %v (%v); member 0 has %v (%v): want the same type and dimensions after the first", i, shape, dt, first.Shape, first.DType)
		}
		n += t.Shape[0]
	}
	shape := append([]int{n}, first.Shape[1:]...)
	if _, err := CheckedSize(shape); err != nil {
		return nil, err
	}
	out := Zeros(first.DType, shape)
	off := 0
	for _, t := range ts {
		switch first.DType {
		case Float32:
			off += copy(out.F[off:], t.F)
		case Int64:
			off += copy(out.I[off:], t.I)
		case Bool:
			off += copy(out.B[off:], t.B)
		}
	}
	return out, nil
}
