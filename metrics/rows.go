package metrics

import (
	"context"
	"fmt"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/tensor"
)

// batchOf returns the batch size of the inputs, which must share it.
func batchOf(inputs []*tensor.Tensor) (int, error) {
	if len(inputs) == 0 {
		return 0, fmt.Errorf("metrics: no inputs")
	}
	n := -1
	for i, x := range inputs {
		if x == nil || x.Rank() == 0 {
			return 0, fmt.Errorf("metrics: input %d needs a batch dimension", i)
		}
		if n >= 0 && x.Shape[0] != n {
			return 0, fmt.Errorf("metrics: input %d has batch %d, input 0 has %d", i, x.Shape[0], n)
		}
		n = x.Shape[0]
	}
	return n, nil
}

// rowsOf returns rows [lo, hi) of each tensor.
func rowsOf(ts []*tensor.Tensor, lo, hi int) []*tensor.Tensor {
	out := make([]*tensor.Tensor, len(ts))
	for i, t := range ts {
		row := t.Len() / t.Shape[0]
		c := tensor.Zeros(t.DType, append([]int{hi - lo}, t.Shape[1:]...))
		copyRows(c, 0, t, lo, hi-lo, row)
		out[i] = c
	}
	return out
}

// repeatRows repeats each row of x k times (example-major), in x's type.
func repeatRows(x *tensor.Tensor, k int) *tensor.Tensor {
	n := x.Shape[0]
	row := x.Len() / max(n, 1)
	out := tensor.Zeros(x.DType, append([]int{n * k}, x.Shape[1:]...))
	for r := 0; r < n*k; r++ {
		copyRows(out, r, x, r/k, 1, row)
	}
	return out
}

// copyRows copies count rows of from, starting at row src, into dst from
// row at on; both tensors have one type and row elements a row.
func copyRows(dst *tensor.Tensor, at int, from *tensor.Tensor, src, count, row int) {
	d, s, m := at*row, src*row, count*row
	switch from.DType {
	case tensor.Float32:
		copy(dst.F[d:d+m], from.F[s:s+m])
	case tensor.Int64:
		copy(dst.I[d:d+m], from.I[s:s+m])
	case tensor.Bool:
		copy(dst.B[d:d+m], from.B[s:s+m])
	}
}

// extraRows restricts batch-aligned tensors to rows [lo, hi), each repeated
// k times; others pass unchanged.
func extraRows(ts []*tensor.Tensor, n, lo, hi, k int) []*tensor.Tensor {
	if ts == nil {
		return nil
	}
	out := make([]*tensor.Tensor, len(ts))
	for i, t := range ts {
		out[i] = t
		if t != nil && t.Rank() > 0 && t.Shape[0] == n {
			out[i] = repeatRows(rowsOf([]*tensor.Tensor{t}, lo, hi)[0], k)
		}
	}
	return out
}

// rowsOptions returns o for rows [lo, hi) of a batch of n, each repeated k
// times: the target and the batch-aligned additional inputs follow the
// rows.
func rowsOptions(o attr.Options, n, lo, hi, k int) attr.Options {
	ro := o
	ro.Target = attr.TargetRows(o.Target, lo, hi, k)
	ro.Additional = extraRows(o.Additional, n, lo, hi, k)
	return ro
}

// targets evaluates the model on n examples of k rows each and returns the
// target value of each row.
func targets(ctx context.Context, m attr.Model, inputs []*tensor.Tensor, o attr.Options, n, k int) ([]float32, error) {
	all := append(append([]*tensor.Tensor(nil), inputs...), o.Additional...)
	out, err := m.Eval(ctx, all)
	if err != nil {
		return nil, err
	}
	return attr.Select(out, o.Target, n*k)
}
