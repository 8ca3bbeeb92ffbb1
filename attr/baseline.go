package attr

import (
	"fmt"

	"github.com/loupe-ml/loupe/tensor"
)

// baselinesFor expands one baseline per input (bs may be nil: all zeros).
func baselinesFor(bs, xs []*tensor.Tensor) ([]*tensor.Tensor, error) {
	if bs != nil && len(bs) != len(xs) {
		return nil, fmt.Errorf("attr: %d baselines for %d inputs", len(bs), len(xs))
	}
	out := make([]*tensor.Tensor, len(xs))
	for i, x := range xs {
		var b *tensor.Tensor
		if bs != nil {
			b = bs[i]
		}
		var err error
		if out[i], err = baselineFor(b, x, i); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// batchAndBaselines checks the inputs and returns their batch size and one
// baseline of the input's shape per input (bs may be nil: all zeros).
func batchAndBaselines(inputs, bs []*tensor.Tensor) (int, []*tensor.Tensor, error) {
	n, err := batchOf(inputs)
	if err != nil {
		return 0, nil, err
	}
	base, err := baselinesFor(bs, inputs)
	if err != nil {
		return 0, nil, err
	}
	return n, base, nil
}

// baselineFor expands the baseline b of input i (nil: zeros; shape []: a
// scalar; shape [1, ...]: one row for every example; or the input's shape)
// to x's shape, in x's dtype.
func baselineFor(b, x *tensor.Tensor, i int) (*tensor.Tensor, error) {
	out := tensor.Zeros(x.DType, x.Shape)
	if b == nil {
		return out, nil
	}
	if err := b.Check(); err != nil {
		return nil, fmt.Errorf("attr: baseline %d: %w", i, err)
	}
	n := x.Shape[0]
	row := x.Len() / max(n, 1)
	switch {
	case b.Len() == 1 && (b.Rank() == 0 || b.Rank() == 1):
		v := b.Float64At(0)
		for e := 0; e < x.Len(); e++ {
			setAt(out, e, v)
		}
	case tensor.SameShape(b.Shape, x.Shape):
		for e := 0; e < x.Len(); e++ {
			setAt(out, e, b.Float64At(e))
		}
	case b.Rank() == x.Rank() && b.Shape[0] == 1 && tensor.SameShape(b.Shape[1:], x.Shape[1:]):
		for e := 0; e < x.Len(); e++ {
			setAt(out, e, b.Float64At(e%row))
		}
	case tensor.SameShape(b.Shape, x.Shape[1:]):
		for e := 0; e < x.Len(); e++ {
			setAt(out, e, b.Float64At(e%row))
		}
	default:
		return nil, fmt.Errorf("attr: baseline %d has shape %v; input %d has shape %v (want a scalar, the input's shape, or one row of it)", i, b.Shape, i, x.Shape)
	}
	return out, nil
}

func setAt(t *tensor.Tensor, i int, v float64) {
	switch t.DType {
	case tensor.Float32:
		t.F[i] = float32(v)
	case tensor.Int64:
		t.I[i] = int64(v)
	case tensor.Bool:
		t.B[i] = v != 0
	}
}

// multiplyByInputs multiplies each attribution by its input's difference
// from its baseline (see mulDiff).
func multiplyByInputs(attrs, inputs, base []*tensor.Tensor) {
	for i, x := range inputs {
		mulDiff(attrs[i].F, x.F, base[i].F)
	}
}

// mulDiff multiplies a by (x - b) element by element, as Captum's
// multiply_by_inputs does: local attributions become global ones.
func mulDiff(a, x, b []float32) {
	for e := range a {
		a[e] *= x[e] - b[e]
	}
}
