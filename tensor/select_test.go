package tensor

import (
	"fmt"
	"strings"
	"testing"
)

func TestExampleAndBatch(t *testing.T) {
	x, _ := FromFloat32([]float32{1, 2, 3, 4, 5, 6}, 3, 2)
	e, err := x.Example(1)
	if err != nil || !SameShape(e.Shape, []int{2}) || e.F[0] != 3 || e.F[1] != 4 {
		t.Fatalf("Example(1) = %v, %v", e, err)
	}
	e.F[0] = 30 // shares x's data
	if x.F[2] != 30 {
		t.Error("Example copied the data")
	}
	if _, err := x.Example(3); err == nil || !strings.Contains(err.Error(), "example 3 of a batch of 3") {
		t.Errorf("Example(3): %v", err)
	}
	if _, err := Scalar(1).Example(0); err == nil {
		t.Error("example of a scalar: no error")
	}
	ids, _ := FromInt64([]int64{7, 8}, 2, 1)
	if e, err := ids.Example(1); err != nil || e.I[0] != 8 {
		t.Errorf("int example %v, %v", e, err)
	}

	b, err := Batch(x, New(1, 2))
	if err != nil || !SameShape(b.Shape, []int{4, 2}) || b.F[2] != 30 || b.F[7] != 0 {
		t.Fatalf("Batch = %v, %v", b, err)
	}
	b.F[0] = -1
	if x.F[0] != 1 {
		t.Error("Batch shares its members' data")
	}
	if _, err := Batch(x, New(1, 3)); err == nil || !strings.Contains(err.Error(), "member 1 has shape [1 3]") {
		t.Errorf("mismatched batch: %v", err)
	}
	if _, err := Batch(x, ids); err == nil {
		t.Error("batch of two types: no error")
	}
	if _, err := Batch(); err == nil {
		t.Error("empty batch: no error")
	}
}

// Take the second example of a batch of attributions, to draw it.
func ExampleTensor_Example() {
	attributions := New(2, 3, 4, 4) // [N, C, H, W], as methods return them
	second, err := attributions.Example(1)
	if err != nil {
		panic(err)
	}
	fmt.Println(second.Shape)
	// Output: [3 4 4]
}
