package attr

import (
	"fmt"

	"github.com/loupe-ml/loupe/tensor"
)

// Target selects, for each example, the output element an attribution
// explains, as Captum's target argument does. The zero Target means the
// model gives one number per example (output of shape [N] or [N,1]).
type Target struct {
	all     []int          // one index tuple shared by every example
	each    [][]int        // one index tuple per example
	weights *tensor.Tensor // a linear function of each example's output
	fn      rowFn          // a function of each example's output (target_kinds.go)
	ex      []int          // for fn: the example each row belongs to (nil: row r is example r)
}

// Weights targets the weighted sum of each example's output, sum(w * y):
// for neuron methods a function of a layer (the mean of a channel, the sum
// of a region) rather than one neuron, as Captum's callable
// neuron_selector when the function is linear. w has the output's shape
// without the batch dimension.
func Weights(w *tensor.Tensor) Target { return Target{weights: w.AsFloat32()} }

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
func (t Target) IsZero() bool {
	return t.all == nil && t.each == nil && t.weights == nil && t.fn == nil
}

// String describes the target.
func (t Target) String() string {
	switch {
	case t.fn != nil:
		return t.fn.String()
	case t.weights != nil:
		return fmt.Sprintf("weights%v", t.weights.Shape)
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
	if t.fn != nil && k > 1 {
		ex := make([]int, n*k)
		for r := range ex {
			if interleave {
				ex[r] = t.exOf(r / k)
			} else {
				ex[r] = t.exOf(r % n)
			}
		}
		return Target{fn: t.fn, ex: ex}
	}
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

// rows returns the target restricted to the given rows.
func (t Target) rows(rows []int) Target {
	if t.fn != nil {
		ex := make([]int, len(rows))
		for i, r := range rows {
			ex[i] = t.exOf(r)
		}
		return Target{fn: t.fn, ex: ex}
	}
	if t.each == nil {
		return t
	}
	each := make([][]int, len(rows))
	for i, r := range rows {
		each[i] = t.each[r]
	}
	return Target{each: each}
}

// TargetRows returns the target for examples lo..hi-1 of a batch, each
// repeated k times in a row (for methods and metrics that expand a chunk
// of the batch).
func TargetRows(t Target, lo, hi, k int) Target {
	if t.fn != nil {
		ex := make([]int, 0, (hi-lo)*k)
		for e := lo; e < hi; e++ {
			for s := 0; s < k; s++ {
				ex = append(ex, t.exOf(e))
			}
		}
		return Target{fn: t.fn, ex: ex}
	}
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

// seed returns the gradient seed that selects the target in every row of
// an output of shape out: one-hot at the target index, or the weights.
func (t Target) seed(out []int) (*tensor.Tensor, error) {
	if t.fn != nil {
		return nil, fmt.Errorf("target %v is a function of the output's values; it cannot select from a shape alone", t)
	}
	s := tensor.New(out...)
	if t.weights != nil {
		if len(out) == 0 || !tensor.SameShape(t.weights.Shape, out[1:]) {
			return nil, fmt.Errorf("target weights of shape %v for an output of shape %v (want the output's shape without the batch)", t.weights.Shape, out)
		}
		row := t.weights.Len()
		for r := 0; r < out[0]; r++ {
			copy(s.F[r*row:(r+1)*row], t.weights.F)
		}
		return s, nil
	}
	offs, err := t.offsets(out)
	if err != nil {
		return nil, err
	}
	for _, o := range offs {
		s.F[o] = 1
	}
	return s, nil
}

// seedOf returns the gradient seed of the target at an output: the
// derivative of the sum over rows of the target values with respect to
// the output (one-hot or the weights for linear targets).
func (t Target) seedOf(out *tensor.Tensor) (*tensor.Tensor, error) {
	if t.fn == nil {
		return t.seed(out.Shape)
	}
	out = out.AsFloat32()
	s := tensor.New(out.Shape...)
	if _, err := t.fnRows(out, s); err != nil {
		return nil, err
	}
	return s, nil
}

// pick returns the target value of every row of an output.
func (t Target) pick(out *tensor.Tensor) ([]float32, error) {
	out = out.AsFloat32()
	if t.fn != nil {
		return t.fnRows(out, nil)
	}
	s, err := t.seed(out.Shape)
	if err != nil {
		return nil, err
	}
	return rowDots(s, out), nil
}

// rowDots returns, per row, the dot product of two tensors of one shape.
func rowDots(a, b *tensor.Tensor) []float32 {
	n := 1
	if a.Rank() > 0 {
		n = a.Shape[0]
	}
	row := a.Len() / max(n, 1)
	v := make([]float32, n)
	for r := range v {
		var d float32
		for i := r * row; i < (r+1)*row; i++ {
			if a.F[i] != 0 {
				d += a.F[i] * b.F[i]
			}
		}
		v[r] = d
	}
	return v
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
	return t.pick(out)
}
