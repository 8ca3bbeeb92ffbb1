package tensor

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

func TestBroadcastShape(t *testing.T) {
	tests := []struct {
		a, b, want []int
		err        bool
	}{
		{[]int{2, 3}, []int{2, 3}, []int{2, 3}, false},
		{[]int{2, 1}, []int{1, 3}, []int{2, 3}, false},
		{[]int{3}, []int{4, 2, 3}, []int{4, 2, 3}, false},
		{[]int{}, []int{5}, []int{5}, false},
		{[]int{2, 3}, []int{3, 2}, nil, true},
	}
	for _, tc := range tests {
		got, err := BroadcastShape(tc.a, tc.b)
		if tc.err {
			if err == nil || !strings.Contains(err.Error(), "broadcast") {
				t.Errorf("%v,%v: error %v", tc.a, tc.b, err)
			}
			continue
		}
		if err != nil || !SameShape(got, tc.want) {
			t.Errorf("%v,%v = %v, %v; want %v", tc.a, tc.b, got, err, tc.want)
		}
	}
}

func TestSumTo(t *testing.T) {
	g, _ := FromFloat32([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	tests := []struct {
		shape []int
		want  []float32
	}{
		{[]int{1, 3}, []float32{5, 7, 9}},
		{[]int{3}, []float32{5, 7, 9}},
		{[]int{2, 1}, []float32{6, 15}},
		{[]int{}, []float32{21}},
		{[]int{2, 3}, []float32{1, 2, 3, 4, 5, 6}},
	}
	for _, tc := range tests {
		got := SumTo(g, tc.shape)
		if !SameShape(got.Shape, tc.shape) || MaxAbsDiff(got.F, tc.want) != 0 {
			t.Errorf("SumTo %v = %v, want %v", tc.shape, got, tc.want)
		}
	}
}

func TestCheckAndReshape(t *testing.T) {
	x := New(2, 3)
	if err := x.Check(); err != nil {
		t.Fatal(err)
	}
	bad := &Tensor{DType: Float32, Shape: []int{2, 2}, F: make([]float32, 3)}
	if err := bad.Check(); err == nil {
		t.Error("short data: no error")
	}
	if _, err := x.Reshape(4, 2); err == nil {
		t.Error("reshape 6 to 8: no error")
	}
	r, err := x.Reshape(3, 2)
	if err != nil || !SameShape(r.Shape, []int{3, 2}) {
		t.Errorf("reshape: %v %v", r, err)
	}
	if _, err := FromFloat32(make([]float32, 5), 2, 3); err == nil {
		t.Error("FromFloat32 with 5 values for 2x3: no error")
	}
}

func TestAllocationLimits(t *testing.T) {
	for _, shape := range [][]int{{-1, 3}, {1 << 20, 1 << 20}, {1 << 40, 1 << 40, 4}} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "tensor: shape") {
					t.Errorf("New%v: recovered %v, want a panic naming the shape", shape, r)
				}
			}()
			New(shape...)
		}()
	}
	if x := New(0, 1<<40); x.Len() != 0 {
		t.Errorf("empty tensor of %d elements", x.Len())
	}
}

func TestSizeDoesNotWrap(t *testing.T) {
	if n := Size([]int{1 << 62, 4}); n != math.MaxInt {
		t.Errorf("Size([2^62 4]) = %d, want math.MaxInt (saturated)", n)
	}
	if n := Size([]int{1 << 62, 4, 0}); n != 0 {
		t.Errorf("Size with a zero dimension = %d", n)
	}
	if _, err := CheckedSize([]int{1 << 62, 4}); err == nil {
		t.Error("CheckedSize([2^62 4]): no error")
	}
	if _, err := CheckedSize([]int{3, -1}); err == nil {
		t.Error("CheckedSize([3 -1]): no error")
	}
	if n, err := CheckedSize([]int{2, 3}); n != 6 || err != nil {
		t.Errorf("CheckedSize([2 3]) = %d, %v", n, err)
	}
	x := New(2, 3)
	if _, err := x.Reshape(1<<62, 4, 0, 1); err == nil {
		t.Error("Reshape to 0 elements from 6: no error")
	}
	if _, err := x.Reshape(1<<62, 4); err == nil {
		t.Error("Reshape to an overflowing shape: no error")
	}
}

func TestNegativeShapesRefused(t *testing.T) {
	x := New(2, 3)
	if _, err := x.Reshape(-2, -3); err == nil {
		t.Error("Reshape(-2, -3): no error")
	}
	if _, err := FromFloat32(make([]float32, 6), -2, -3); err == nil {
		t.Error("FromFloat32 with shape [-2 -3]: no error")
	}
}
