package metrics

import (
	"testing"

	"github.com/loupe-ml/loupe/tensor"
)

// The row helpers keep the type of the tensor, and extraRows passes what
// is not batch-aligned unchanged.
func TestRows(t *testing.T) {
	ix, _ := tensor.FromInt64([]int64{0, 1, 2, 3, 4, 5}, 3, 2)
	got := extraRows([]*tensor.Tensor{ix, nil, tensor.New(2)}, 3, 1, 3, 2)
	want := []int64{2, 3, 2, 3, 4, 5, 4, 5}
	if !tensor.SameShape(got[0].Shape, []int{4, 2}) || len(got[0].I) != len(want) {
		t.Fatalf("extra rows %v, want int64[4 2]%v", got[0], want)
	}
	for i, v := range want {
		if got[0].I[i] != v {
			t.Fatalf("extra rows %v, want %v", got[0].I, want)
		}
	}
	if got[1] != nil || got[2].Len() != 2 {
		t.Errorf("tensors that are not batch-aligned changed: %v %v", got[1], got[2])
	}
	b := tensor.NewBool(2, 1)
	b.B[1] = true
	if r := rowsOf([]*tensor.Tensor{b}, 1, 2)[0]; r.DType != tensor.Bool || !r.B[0] {
		t.Errorf("row 1 of a bool tensor: %v", r)
	}
}
