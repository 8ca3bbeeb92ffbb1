package shapeops

import (
	"fmt"
	"math"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// constant is Constant: a fixed tensor, copied on every call so that no
// caller can change it for the next.
type constant struct {
	t *tensor.Tensor
}

func newConstant(n *graph.Node, opset int) (op.Kernel, error) {
	var t *tensor.Tensor
	set := 0
	for _, name := range []string{"value", "value_float", "value_floats", "value_int", "value_ints", "sparse_value", "value_string", "value_strings"} {
		if !n.Has(name) {
			continue
		}
		set++
		a := n.Attrs[name]
		switch name {
		case "value":
			t = n.Tensor(name)
			if t == nil {
				return nil, op.Errorf(n, "attribute value is not a tensor")
			}
			if err := t.Check(); err != nil {
				return nil, op.Errorf(n, "attribute value: %v", err)
			}
		case "value_float":
			t = tensor.Scalar(n.Float(name, 0))
		case "value_floats":
			t = &tensor.Tensor{DType: tensor.Float32, Shape: []int{len(a.Floats)}, F: append([]float32{}, a.Floats...)}
		case "value_int":
			t = tensor.ScalarInt(n.Int(name, 0))
		case "value_ints":
			v := n.Ints(name, nil)
			t = &tensor.Tensor{DType: tensor.Int64, Shape: []int{len(v)}, I: append([]int64{}, v...)}
		default:
			return nil, op.Errorf(n, "attribute %s is not supported (no sparse or string tensors)", name)
		}
	}
	if set != 1 {
		return nil, op.Errorf(n, "Constant needs exactly one value attribute, has %d", set)
	}
	return constant{t: t}, nil
}

func (k constant) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	return []*tensor.Tensor{withShape(k.t, k.t.Shape)}, nil
}

// constantOfShape is ConstantOfShape: a tensor of the shape given as input,
// filled with one value (float 0 by default).
type constantOfShape struct {
	value *tensor.Tensor
}

func newConstantOfShape(n *graph.Node, opset int) (op.Kernel, error) {
	v := tensor.Scalar(0)
	if n.Has("value") {
		v = n.Tensor("value")
		if v == nil || v.Check() != nil || v.Len() != 1 {
			return nil, op.Errorf(n, "attribute value must be a one-element tensor")
		}
	}
	return constantOfShape{value: v}, nil
}

func (k constantOfShape) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	spec, err := intList(in, 0, "shape")
	if err != nil {
		return nil, err
	}
	shape := make([]int, len(spec))
	for i, d := range spec {
		if d < 0 {
			return nil, fmt.Errorf("shape %v (input 0) has a negative dimension", spec)
		}
		shape[i] = int(d)
	}
	out := like(k.value.DType, shape)
	switch k.value.DType {
	case tensor.Float32:
		fill(out.F, k.value.F[0])
	case tensor.Int64:
		fill(out.I, k.value.I[0])
	case tensor.Bool:
		fill(out.B, k.value.B[0])
	}
	return []*tensor.Tensor{out}, nil
}

func fill[T elem](s []T, v T) {
	var zero T
	if v == zero {
		return
	}
	for i := range s {
		s[i] = v
	}
}

// rangeKernel is Range: start, start+delta, ... up to (not including) limit.
type rangeKernel struct{}

func newRange(n *graph.Node, opset int) (op.Kernel, error) { return rangeKernel{}, nil }

func (rangeKernel) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	names := []string{"start", "limit", "delta"}
	var f [3]float64
	var iv [3]int64
	dt := tensor.DType(0)
	for i, name := range names {
		t := op.Arg(in, i)
		var err error
		if f[i], iv[i], err = scalarOf(t, i, name); err != nil {
			return nil, err
		}
		if i == 0 {
			dt = t.DType
		} else if t.DType != dt {
			return nil, fmt.Errorf("input %d (%s) is %s, input 0 (start) is %s", i, name, t.DType, dt)
		}
	}
	switch dt {
	case tensor.Int64:
		start, limit, delta := iv[0], iv[1], iv[2]
		if delta == 0 {
			return nil, fmt.Errorf("input 2 (delta) is 0")
		}
		n := int64(0)
		if delta > 0 && limit > start {
			n = (limit - start + delta - 1) / delta
		} else if delta < 0 && limit < start {
			n = (start - limit - delta - 1) / -delta
		}
		out := tensor.NewInt(int(n))
		for i := range out.I {
			out.I[i] = start + int64(i)*delta
		}
		return []*tensor.Tensor{out}, nil
	case tensor.Float32:
		start, limit, delta := float32(f[0]), float32(f[1]), float32(f[2])
		if delta == 0 {
			return nil, fmt.Errorf("input 2 (delta) is 0")
		}
		c := math.Ceil(float64(limit-start) / float64(delta))
		if math.IsNaN(c) || c > 1<<31 {
			return nil, fmt.Errorf("range from %g to %g by %g is too long", start, limit, delta)
		}
		n := max(int(c), 0)
		out := tensor.New(n)
		for i := range out.F {
			out.F[i] = start + float32(i)*delta
		}
		return []*tensor.Tensor{out}, nil
	}
	return nil, fmt.Errorf("input 0 (start) is %s, want float32 or int64", dt)
}

// ONNX TensorProto data types.
const (
	onnxFloat    = 1
	onnxUint8    = 2
	onnxInt8     = 3
	onnxUint16   = 4
	onnxInt16    = 5
	onnxInt32    = 6
	onnxInt64    = 7
	onnxString   = 8
	onnxBool     = 9
	onnxFloat16  = 10
	onnxDouble   = 11
	onnxUint32   = 12
	onnxUint64   = 13
	onnxBfloat16 = 16
)

// cast is Cast (and CastLike, when like is set): conversion to the dtype
// that loupe uses for the ONNX type: float32 for every float type, int64
// for every integer type (values wrapped to narrower integer types as they
// would be stored), bool.
type cast struct {
	to   tensor.DType
	wrap int // ONNX integer type to wrap to, 0 for none
	like bool
}

func newCast(n *graph.Node, opset int) (op.Kernel, error) {
	if !n.Has("to") {
		return nil, op.Errorf(n, "Cast needs the to attribute")
	}
	to := int(n.Int("to", 0))
	k := cast{}
	switch to {
	case onnxFloat, onnxDouble, onnxFloat16, onnxBfloat16:
		k.to = tensor.Float32
	case onnxInt64, onnxUint64:
		k.to = tensor.Int64
	case onnxInt32, onnxInt16, onnxInt8, onnxUint8, onnxUint16, onnxUint32:
		k.to, k.wrap = tensor.Int64, to
	case onnxBool:
		k.to = tensor.Bool
	case onnxString:
		return nil, op.Errorf(n, "Cast to string is not supported")
	default:
		return nil, op.Errorf(n, "Cast to ONNX type %d is not supported", to)
	}
	return k, nil
}

func newCastLike(n *graph.Node, opset int) (op.Kernel, error) {
	return cast{like: true}, nil
}

func (k cast) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	x, err := op.AnyArg(in, 0)
	if err != nil {
		return nil, err
	}
	to := k.to
	if k.like {
		t, err := op.AnyArg(in, 1)
		if err != nil {
			return nil, err
		}
		to = t.DType
	}
	if x.DType == to && k.wrap == 0 {
		return []*tensor.Tensor{withShape(x, x.Shape)}, nil
	}
	out := like(to, x.Shape)
	n := x.Len()
	switch to {
	case tensor.Float32:
		for i := range out.F {
			out.F[i] = float32(x.Float64At(i))
		}
	case tensor.Int64:
		if x.DType == tensor.Float32 {
			for i, v := range x.F {
				out.I[i] = floatToInt(v)
			}
		} else {
			for i := range n {
				out.I[i] = int64(x.Float64At(i))
			}
		}
		wrapInts(out.I, k.wrap)
	case tensor.Bool:
		for i := range out.B {
			out.B[i] = x.Float64At(i) != 0
		}
	}
	return []*tensor.Tensor{out}, nil
}

// floatToInt truncates toward zero, saturating out-of-range values and
// mapping NaN to 0 (where C leaves the result undefined).
func floatToInt(v float32) int64 {
	switch {
	case v != v:
		return 0
	case v >= 9.223372e18:
		return math.MaxInt64
	case v <= -9.223372e18:
		return math.MinInt64
	}
	return int64(v)
}

func wrapInts(s []int64, to int) {
	if to == 0 {
		return
	}
	for i, v := range s {
		switch to {
		case onnxInt32:
			s[i] = int64(int32(v))
		case onnxInt16:
			s[i] = int64(int16(v))
		case onnxInt8:
			s[i] = int64(int8(v))
		case onnxUint8:
			s[i] = int64(uint8(v))
		case onnxUint16:
			s[i] = int64(uint16(v))
		case onnxUint32:
			s[i] = int64(uint32(v))
		}
	}
}

func (k cast) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	grads := make([]*tensor.Tensor, len(in))
	if op.Needs(need, 0) && in[0].DType == tensor.Float32 && out[0].DType == tensor.Float32 {
		grads[0] = reshapeGrad(gout, 0, in[0].Shape)
	}
	return grads, nil
}

// nonZero is NonZero: the coordinates of the non-zero elements, one column
// per element, as an int64 [rank, count] tensor.
type nonZero struct{}

func newNonZero(n *graph.Node, opset int) (op.Kernel, error) { return nonZero{}, nil }

func (nonZero) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	x, err := op.AnyArg(in, 0)
	if err != nil {
		return nil, err
	}
	n := x.Len()
	var hits []int
	for i := range n {
		var nz bool
		switch x.DType {
		case tensor.Float32:
			nz = x.F[i] != 0
		case tensor.Int64:
			nz = x.I[i] != 0
		default:
			nz = x.B[i]
		}
		if nz {
			hits = append(hits, i)
		}
	}
	r := x.Rank()
	if r == 0 {
		// As onnxruntime: a scalar counts as one coordinate, always 0.
		return []*tensor.Tensor{tensor.NewInt(1, len(hits))}, nil
	}
	out := tensor.NewInt(r, len(hits))
	st := tensor.Strides(x.Shape)
	for j, h := range hits {
		for d := range r {
			out.I[d*len(hits)+j] = int64(h / st[d] % x.Shape[d])
		}
	}
	return []*tensor.Tensor{out}, nil
}
