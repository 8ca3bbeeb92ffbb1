package attr

import (
	"fmt"

	"github.com/loupe-ml/loupe/tensor"
)

// Target selects, for each example, the output element an attribution
// explains, as Captum's target argument does. The zero Target means the
// model gives one number per example (output of shape [N] or [N,1]).
type Target struct {
	all  []int   // one index tuple shared by every example
	each [][]int // one index tuple per example
}

// Class targets output index i (for outputs [N, C]) for every example.
func Class(i int) Target { return Target{all: []int{i}} }

// Classes targets one output index per example.
func Classes(idx ...int) Target {
	each := make([][]int, len(idx))
	for i, k := range idx {
		each[i] = []int{k}
	}
	return Target{each: each}
}

// Index targets the element at the index tuple (without the batch
// dimension) for every example, for outputs of more than two dimensions.
func Index(idx ...int) Target { return Target{all: append([]int(nil), idx...)} }

// Indices targets one index tuple per example.
func Indices(idx ...[]int) Target {
	each := make([][]int, len(idx))
	for i, t := range idx {
		each[i] = append([]int(nil), t...)
	}
	return Target{each: each}
}

// IsZero reports whether no target was given.
func (t Target) IsZero() bool { return t.all == nil && t.each == nil }

// String describes the target.
func (t Target) String() string {
	switch {
	case t.all != nil:
		return fmt.Sprint(t.all)
	case t.each != nil:
		return fmt.Sprint(t.each)
	}
	return "none"
}

// expand returns the target for a batch of n examples repeated k times:
// example-major (row r is example r / k, as repeat_interleave gives) when
// interleave is true, else block-major (row r is example r % n, as
// torch.cat of k copies gives).
func (t Target) expand(n, k int, interleave bool) Target {
	if t.each == nil || k == 1 {
		return t
	}
	each := make([][]int, n*k)
	for r := range each {
		if interleave {
			each[r] = t.each[r/k]
		} else {
			each[r] = t.each[r%n]
		}
	}
	return Target{each: each}
}

// offsets returns, for an output of shape out, the flat offset of the
// selected element in each row.
func (t Target) offsets(out []int) ([]int, error) {
	if len(out) == 0 {
		return nil, fmt.Errorf("target: the model output is a scalar; it must have a batch dimension")
	}
	rows := out[0]
	if t.each != nil && len(t.each) != rows {
		return nil, fmt.Errorf("target: %d targets for %d examples", len(t.each), rows)
	}
	inner := out[1:]
	rowSize := tensor.Size(inner)
	offs := make([]int, rows)
	for r := 0; r < rows; r++ {
		var idx []int
		switch {
		case t.all != nil:
			idx = t.all
		case t.each != nil:
			idx = t.each[r]
		}
		if idx == nil {
			if rowSize != 1 {
				return nil, fmt.Errorf("target: none given, but the model output has shape %v (more than one number per example)", out)
			}
			offs[r] = r
			continue
		}
		if len(idx) != len(inner) {
			return nil, fmt.Errorf("target %v has %d indices; the output %v needs %d", idx, len(idx), out, len(inner))
		}
		off := 0
		for d, k := range idx {
			if k < 0 || k >= inner[d] {
				return nil, fmt.Errorf("target %v is out of range for output shape %v", idx, out)
			}
			off = off*inner[d] + k
		}
		offs[r] = r*rowSize + off
	}
	return offs, nil
}

// seed returns the one-hot gradient seed that selects the target in every
// row of an output of shape out, and the selected offsets.
func (t Target) seed(out []int) (*tensor.Tensor, []int, error) {
	offs, err := t.offsets(out)
	if err != nil {
		return nil, nil, err
	}
	s := tensor.New(out...)
	for _, o := range offs {
		s.F[o] = 1
	}
	return s, offs, nil
}

// TargetRows returns the target for examples lo..hi-1 of a batch, each
// repeated k times in a row (for methods and metrics that expand a chunk
// of the batch).
func TargetRows(t Target, lo, hi, k int) Target {
	if t.each == nil {
		return t
	}
	each := make([][]int, 0, (hi-lo)*k)
	for e := lo; e < hi; e++ {
		for s := 0; s < k; s++ {
			each = append(each, t.each[e])
		}
	}
	return Target{each: each}
}

// Select returns the target element of each of the rows of a model output
// (the whole output when it has one element and no target is given).
func Select(out *tensor.Tensor, t Target, rows int) ([]float32, error) {
	out = out.AsFloat32()
	if out.Len() == 1 && t.IsZero() && rows == 1 {
		return []float32{out.F[0]}, nil
	}
	if out.Rank() == 0 || out.Shape[0] != rows {
		return nil, fmt.Errorf("attr: the model returned shape %v for %d rows", out.Shape, rows)
	}
	offs, err := t.offsets(out.Shape)
	if err != nil {
		return nil, err
	}
	v := make([]float32, len(offs))
	for i, o := range offs {
		v[i] = out.F[o]
	}
	return v, nil
}
