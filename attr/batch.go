package attr

import (
	"fmt"
	"iter"

	"github.com/loupe-ml/loupe/tensor"
)

// batchOf returns the batch size of the inputs, checking they agree.
func batchOf(inputs []*tensor.Tensor) (int, error) {
	if len(inputs) == 0 {
		return 0, fmt.Errorf("attr: no inputs")
	}
	n := -1
	for i, x := range inputs {
		if x == nil {
			return 0, fmt.Errorf("attr: input %d is nil", i)
		}
		if err := x.Check(); err != nil {
			return 0, fmt.Errorf("attr: input %d: %w", i, err)
		}
		if x.Rank() == 0 {
			return 0, fmt.Errorf("attr: input %d is a scalar; inputs need a batch dimension", i)
		}
		if n >= 0 && x.Shape[0] != n {
			return 0, fmt.Errorf("attr: input %d has batch %d, input 0 has %d", i, x.Shape[0], n)
		}
		n = x.Shape[0]
	}
	return n, nil
}

// chunks yields the ranges [lo, hi) that split n items into runs of at
// most per (per > 0): the items of one model call.
func chunks(n, per int) iter.Seq2[int, int] {
	return func(yield func(int, int) bool) {
		for lo := 0; lo < n; lo += per {
			if !yield(lo, min(n, lo+per)) {
				return
			}
		}
	}
}

// floatInputs checks that every input is float32, as gradients need; method
// names the method in the error.
func floatInputs(inputs []*tensor.Tensor, method string) error {
	for i, x := range inputs {
		if x.DType != tensor.Float32 {
			return fmt.Errorf("attr: input %d is %s; %s needs float inputs", i, x.DType, method)
		}
	}
	return nil
}

// repeat returns x repeated k times along the first dimension: each row k
// times in a row (interleave, torch's repeat_interleave) or the whole batch
// k times (torch.cat of k copies).
func repeat(x *tensor.Tensor, k int, interleave bool) *tensor.Tensor {
	n := x.Shape[0]
	row := x.Len() / max(n, 1)
	shape := append([]int{n * k}, x.Shape[1:]...)
	out := tensor.Zeros(x.DType, shape)
	for r := 0; r < n*k; r++ {
		src := r % n
		if interleave {
			src = r / k
		}
		copyRow(out, r, x, src, row)
	}
	return out
}

// repeatAll repeats every tensor k times (block-major).
func repeatAll(ts []*tensor.Tensor, k int) []*tensor.Tensor {
	out := make([]*tensor.Tensor, len(ts))
	for i, t := range ts {
		out[i] = repeat(t, k, false)
	}
	return out
}

// copyRow copies row sr of src to row dr of dst (rows of row elements).
func copyRow(dst *tensor.Tensor, dr int, src *tensor.Tensor, sr, row int) {
	switch src.DType {
	case tensor.Float32:
		copy(dst.F[dr*row:(dr+1)*row], src.F[sr*row:(sr+1)*row])
	case tensor.Int64:
		copy(dst.I[dr*row:(dr+1)*row], src.I[sr*row:(sr+1)*row])
	case tensor.Bool:
		copy(dst.B[dr*row:(dr+1)*row], src.B[sr*row:(sr+1)*row])
	}
}

// gatherRows returns the rows idx of t.
func gatherRows(t *tensor.Tensor, idx []int) *tensor.Tensor {
	shape := append([]int{len(idx)}, t.Shape[1:]...)
	out := tensor.Zeros(t.DType, shape)
	row := t.Len() / max(t.Shape[0], 1)
	for r, src := range idx {
		copyRow(out, r, t, src, row)
	}
	return out
}

// concatRows stacks a and b (converted to a's dtype) along the first
// dimension.
func concatRows(a, b *tensor.Tensor) *tensor.Tensor {
	shape := append([]int{a.Shape[0] + b.Shape[0]}, a.Shape[1:]...)
	if a.DType == tensor.Float32 {
		out := tensor.New(shape...)
		copy(out.F, a.F)
		copy(out.F[a.Len():], b.AsFloat32().F)
		return out
	}
	out := tensor.Zeros(a.DType, shape)
	row := a.Len() / max(a.Shape[0], 1)
	for r := 0; r < a.Shape[0]; r++ {
		copyRow(out, r, a, r, row)
	}
	bb := b
	if b.DType != a.DType {
		bb = b.AsInt64()
	}
	for r := 0; r < b.Shape[0]; r++ {
		copyRow(out, a.Shape[0]+r, bb, r, row)
	}
	return out
}

// pairRows stacks each input over its baselines: one batch of 2n rows, the
// inputs first, as DeepLift runs them.
func pairRows(inputs, base []*tensor.Tensor) []*tensor.Tensor {
	both := make([]*tensor.Tensor, len(inputs))
	for i, x := range inputs {
		both[i] = concatRows(x, base[i])
	}
	return both
}

// expandExtra repeats the additional inputs whose first dimension is n.
func expandExtra(extra []*tensor.Tensor, n, k int, interleave bool) []*tensor.Tensor {
	return mapAligned(extra, n, func(x *tensor.Tensor) *tensor.Tensor { return repeat(x, k, interleave) })
}

// selectRows returns the tensors whose first dimension is n restricted to
// the given rows; the others pass unchanged.
func selectRows(ts []*tensor.Tensor, n int, rows []int) []*tensor.Tensor {
	return mapAligned(ts, n, func(t *tensor.Tensor) *tensor.Tensor { return gatherRows(t, rows) })
}

// mapAligned applies f to the tensors whose first dimension is n (see
// batchAligned); the others pass unchanged. A nil slice stays nil.
func mapAligned(ts []*tensor.Tensor, n int, f func(*tensor.Tensor) *tensor.Tensor) []*tensor.Tensor {
	if ts == nil {
		return nil
	}
	out := make([]*tensor.Tensor, len(ts))
	for i, t := range ts {
		out[i] = t
		if batchAligned(t, n) {
			out[i] = f(t)
		}
	}
	return out
}

// batchAligned reports whether t has a first dimension of n: an additional
// input (or baseline) given per example, which follows the rows when a
// method expands or splits the batch.
func batchAligned(t *tensor.Tensor, n int) bool {
	return t != nil && t.Rank() > 0 && t.Shape[0] == n
}

// copyElem copies element si of src to element di of dst, of src's dtype.
func copyElem(dst *tensor.Tensor, di int, src *tensor.Tensor, si int) {
	switch src.DType {
	case tensor.Float32:
		dst.F[di] = src.F[si]
	case tensor.Int64:
		dst.I[di] = src.I[si]
	case tensor.Bool:
		dst.B[di] = src.B[si]
	}
}

// zerosLike returns float tensors shaped as the inputs (with a batch of 1
// when batchOne).
func zerosLike(inputs []*tensor.Tensor, batchOne bool) []*tensor.Tensor {
	out := make([]*tensor.Tensor, len(inputs))
	for i, x := range inputs {
		shape := append([]int(nil), x.Shape...)
		if batchOne {
			shape[0] = 1
		}
		out[i] = tensor.New(shape...)
	}
	return out
}

// rowSum sums row r of every tensor (each of n rows).
func rowSum(ts []*tensor.Tensor, r, n int) float32 {
	var s float32
	for _, t := range ts {
		row := t.Len() / n
		var rs float32
		for _, v := range t.F[r*row : (r+1)*row] {
			rs += v
		}
		s += rs
	}
	return s
}
