// Package tensor provides the dense n-dimensional arrays that loupe's engine,
// attribution methods and pictures exchange: float32, int64 and bool data in
// row-major order, with shapes, broadcasting and a few helpers.
//
// A Tensor is a plain value: its fields are exported and may be read directly.
// Exactly one of F, I and B holds the data, according to DType.
package tensor

import (
	"fmt"
	"math"
	"strings"
)

// DType is the element type of a tensor.
type DType uint8

// The element types loupe handles.
const (
	Float32 DType = iota + 1
	Int64
	Bool
)

// String returns the ONNX-style name of the type ("float32", "int64", "bool").
func (d DType) String() string {
	switch d {
	case Float32:
		return "float32"
	case Int64:
		return "int64"
	case Bool:
		return "bool"
	}
	return fmt.Sprintf("dtype(%d)", uint8(d))
}

// Tensor is a dense n-dimensional array in row-major order.
type Tensor struct {
	DType DType
	Shape []int
	F     []float32 // data when DType is Float32
	I     []int64   // data when DType is Int64
	B     []bool    // data when DType is Bool
}

// Size returns the number of elements of a shape (1 for a scalar shape).
// A product that does not fit in an int (an absurd shape, never one of a
// tensor that exists) is reported as math.MaxInt rather than wrapped, so
// that comparisons with it fail instead of passing by accident.
func Size(shape []int) int {
	n := 1
	over := false
	for _, d := range shape {
		if d == 0 {
			return 0
		}
		if over {
			continue
		}
		if d > 0 && n > 0 && n > math.MaxInt/d {
			over = true
			continue
		}
		n *= d
	}
	if over {
		return math.MaxInt
	}
	return n
}

// CheckedSize returns the number of elements of a shape, or an error
// naming the shape when a dimension is negative or the count exceeds
// MaxLen: the check to make on a shape read from a file or a request
// before allocating it.
func CheckedSize(shape []int) (int, error) {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("tensor: shape %v has a negative dimension", shape)
		}
	}
	for _, d := range shape {
		if d == 0 {
			return 0, nil
		}
	}
	for _, d := range shape {
		if n > MaxLen/d {
			return 0, fmt.Errorf("tensor: shape %v has more than %d elements", shape, MaxLen)
		}
		n *= d
	}
	return n, nil
}

// MaxLen is the most elements a tensor made by New, NewInt or NewBool may
// hold (4 GiB of float32): larger shapes, like negative dimensions, are a
// corrupt model or input, not a workload.
const MaxLen = 1 << 30

// allocLen returns the number of elements of a shape to allocate, and
// panics, with the shape in the message, when a dimension is negative or
// the count exceeds MaxLen (the engine turns a kernel's panic into an
// error naming the node).
func allocLen(shape []int) int {
	n, err := CheckedSize(shape)
	if err != nil {
		panic(err.Error())
	}
	return n
}

// New returns a zero float32 tensor of the given shape.
func New(shape ...int) *Tensor {
	return &Tensor{DType: Float32, Shape: append([]int(nil), shape...), F: make([]float32, allocLen(shape))}
}

// NewInt returns a zero int64 tensor of the given shape.
func NewInt(shape ...int) *Tensor {
	return &Tensor{DType: Int64, Shape: append([]int(nil), shape...), I: make([]int64, allocLen(shape))}
}

// NewBool returns a false bool tensor of the given shape.
func NewBool(shape ...int) *Tensor {
	return &Tensor{DType: Bool, Shape: append([]int(nil), shape...), B: make([]bool, allocLen(shape))}
}

// Zeros returns a zero tensor of the given type and shape.
func Zeros(dt DType, shape []int) *Tensor {
	switch dt {
	case Int64:
		return NewInt(shape...)
	case Bool:
		return NewBool(shape...)
	}
	return New(shape...)
}

// FromFloat32 wraps data (not copied) in a float32 tensor of the given shape.
// It returns an error if the sizes disagree.
func FromFloat32(data []float32, shape ...int) (*Tensor, error) {
	if n, err := CheckedSize(shape); err != nil || n != len(data) {
		return nil, fmt.Errorf("tensor: %d values do not fill shape %v (%d elements)", len(data), shape, Size(shape))
	}
	return &Tensor{DType: Float32, Shape: append([]int(nil), shape...), F: data}, nil
}

// FromInt64 wraps data (not copied) in an int64 tensor of the given shape.
func FromInt64(data []int64, shape ...int) (*Tensor, error) {
	if n, err := CheckedSize(shape); err != nil || n != len(data) {
		return nil, fmt.Errorf("tensor: %d values do not fill shape %v (%d elements)", len(data), shape, Size(shape))
	}
	return &Tensor{DType: Int64, Shape: append([]int(nil), shape...), I: data}, nil
}

// Scalar returns a float32 tensor of shape [] holding v.
func Scalar(v float32) *Tensor { return &Tensor{DType: Float32, Shape: []int{}, F: []float32{v}} }

// ScalarInt returns an int64 tensor of shape [] holding v.
func ScalarInt(v int64) *Tensor { return &Tensor{DType: Int64, Shape: []int{}, I: []int64{v}} }

// Len returns the number of elements.
func (t *Tensor) Len() int { return Size(t.Shape) }

// Rank returns the number of dimensions.
func (t *Tensor) Rank() int { return len(t.Shape) }

// Clone returns a deep copy.
func (t *Tensor) Clone() *Tensor {
	c := &Tensor{DType: t.DType, Shape: append([]int(nil), t.Shape...)}
	if t.F != nil {
		c.F = append([]float32(nil), t.F...)
	}
	if t.I != nil {
		c.I = append([]int64(nil), t.I...)
	}
	if t.B != nil {
		c.B = append([]bool(nil), t.B...)
	}
	return c
}

// Reshape returns a tensor sharing t's data with a new shape of the same size.
func (t *Tensor) Reshape(shape ...int) (*Tensor, error) {
	if n, err := CheckedSize(shape); err != nil || n != t.Len() {
		return nil, fmt.Errorf("tensor: cannot reshape %v to %v", t.Shape, shape)
	}
	r := *t
	r.Shape = append([]int(nil), shape...)
	return &r, nil
}

// Check reports whether the data slice matches the shape and dtype.
func (t *Tensor) Check() error {
	if t == nil {
		return fmt.Errorf("tensor: nil tensor")
	}
	n := t.Len()
	for _, d := range t.Shape {
		if d < 0 {
			return fmt.Errorf("tensor: negative dimension in shape %v", t.Shape)
		}
	}
	var got int
	switch t.DType {
	case Float32:
		got = len(t.F)
	case Int64:
		got = len(t.I)
	case Bool:
		got = len(t.B)
	default:
		return fmt.Errorf("tensor: unknown dtype %v", t.DType)
	}
	if got != n {
		return fmt.Errorf("tensor: %s tensor of shape %v holds %d values, want %d", t.DType, t.Shape, got, n)
	}
	return nil
}

// Float64At returns element i (flat index) converted to float64, whatever the dtype.
func (t *Tensor) Float64At(i int) float64 {
	switch t.DType {
	case Int64:
		return float64(t.I[i])
	case Bool:
		if t.B[i] {
			return 1
		}
		return 0
	}
	return float64(t.F[i])
}

// AsFloat32 returns t converted to float32 (t itself when it already is).
func (t *Tensor) AsFloat32() *Tensor {
	if t.DType == Float32 {
		return t
	}
	r := New(t.Shape...)
	for i := range r.F {
		r.F[i] = float32(t.Float64At(i))
	}
	return r
}

// AsInt64 returns t converted to int64 (t itself when it already is);
// float values are truncated toward zero.
func (t *Tensor) AsInt64() *Tensor {
	if t.DType == Int64 {
		return t
	}
	r := NewInt(t.Shape...)
	for i := range r.I {
		r.I[i] = int64(t.Float64At(i))
	}
	return r
}

// String returns a short description: dtype, shape and the first values.
func (t *Tensor) String() string {
	if t == nil {
		return "<nil>"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s%v[", t.DType, t.Shape)
	n := t.Len()
	for i := 0; i < n && i < 8; i++ {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%g", t.Float64At(i))
	}
	if n > 8 {
		b.WriteString(" ...")
	}
	b.WriteByte(']')
	return b.String()
}

// SameShape reports whether two shapes are equal.
func SameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Strides returns the row-major strides of a shape.
func Strides(shape []int) []int {
	s := make([]int, len(shape))
	acc := 1
	for i := len(shape) - 1; i >= 0; i-- {
		s[i] = acc
		acc *= shape[i]
	}
	return s
}

// BroadcastShape returns the shape that numpy broadcasting gives for a and b,
// or an error naming both shapes when they are incompatible.
func BroadcastShape(a, b []int) ([]int, error) {
	n := max(len(a), len(b))
	out := make([]int, n)
	for i := 0; i < n; i++ {
		da, db := 1, 1
		if j := len(a) - n + i; j >= 0 {
			da = a[j]
		}
		if j := len(b) - n + i; j >= 0 {
			db = b[j]
		}
		switch {
		case da == db:
			out[i] = da
		case da == 1:
			out[i] = db
		case db == 1:
			out[i] = da
		default:
			return nil, fmt.Errorf("shapes %v and %v do not broadcast", a, b)
		}
	}
	return out, nil
}

// BroadcastStrides returns, for a tensor of shape `from` broadcast to shape
// `to`, the strides to read it with (0 along broadcast dimensions). The result
// has len(to) entries.
func BroadcastStrides(from, to []int) []int {
	s := make([]int, len(to))
	st := Strides(from)
	off := len(to) - len(from)
	for i := range to {
		j := i - off
		if j < 0 || from[j] == 1 {
			continue
		}
		s[i] = st[j]
	}
	return s
}

// MaxAbsDiff returns max |a-b| over two float32 slices of equal length
// (+Inf if lengths differ).
func MaxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	m := 0.0
	for i := range a {
		d := math.Abs(float64(a[i]) - float64(b[i]))
		if d > m || math.IsNaN(d) {
			m = d
		}
	}
	return m
}

// SumTo returns g summed over the dimensions along which a tensor of shape
// `shape` was broadcast to g's shape: the gradient of a broadcast input.
// It returns g itself when the shapes are equal.
func SumTo(g *Tensor, shape []int) *Tensor {
	if SameShape(g.Shape, shape) {
		return g
	}
	out := New(shape...)
	st := BroadcastStrides(shape, g.Shape)
	n := len(g.Shape)
	idx := make([]int, n)
	off := 0
	for _, v := range g.F {
		out.F[off] += v
		for d := n - 1; d >= 0; d-- {
			idx[d]++
			off += st[d]
			if idx[d] < g.Shape[d] {
				break
			}
			off -= st[d] * idx[d]
			idx[d] = 0
		}
	}
	return out
}
