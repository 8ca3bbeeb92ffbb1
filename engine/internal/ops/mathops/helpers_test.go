package mathops

import (
	"math"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

var registry = func() map[string]op.Factory {
	m := map[string]op.Factory{}
	Register(m)
	return m
}()

func aI(name string, v int64) *graph.Attr {
	return &graph.Attr{Name: name, Type: graph.AttrInt, I: v}
}

func aF(name string, v float32) *graph.Attr {
	return &graph.Attr{Name: name, Type: graph.AttrFloat, F: v}
}

func aS(name, v string) *graph.Attr {
	return &graph.Attr{Name: name, Type: graph.AttrString, S: v}
}

func aInts(name string, v ...int64) *graph.Attr {
	return &graph.Attr{Name: name, Type: graph.AttrInts, Ints: v}
}

// mkNode returns a node of the given type with nOut outputs.
func mkNode(opType string, nOut int, attrs ...*graph.Attr) *graph.Node {
	n := &graph.Node{Name: "n", OpType: opType, Attrs: map[string]*graph.Attr{}}
	for i := range nOut {
		n.Outputs = append(n.Outputs, "y"+string(rune('0'+i)))
	}
	for _, a := range attrs {
		n.Attrs[a.Name] = a
	}
	return n
}

// kern builds a kernel for op at opset with one output.
func kern(t testing.TB, opType string, opset int, attrs ...*graph.Attr) op.Kernel {
	t.Helper()
	return kernN(t, opType, opset, 1, attrs...)
}

func kernN(t testing.TB, opType string, opset, nOut int, attrs ...*graph.Attr) op.Kernel {
	t.Helper()
	f, ok := registry[opType]
	if !ok {
		t.Fatalf("%s is not registered", opType)
	}
	k, err := f(mkNode(opType, nOut, attrs...), opset)
	if err != nil {
		t.Fatalf("factory %s: %v", opType, err)
	}
	return k
}

func ft(shape []int, v ...float32) *tensor.Tensor {
	if len(v) == 0 {
		return tensor.New(shape...)
	}
	x, err := tensor.FromFloat32(v, shape...)
	if err != nil {
		panic(err)
	}
	return x
}

func it(shape []int, v ...int64) *tensor.Tensor {
	x, err := tensor.FromInt64(v, shape...)
	if err != nil {
		panic(err)
	}
	return x
}

func bt(shape []int, v ...bool) *tensor.Tensor {
	return &tensor.Tensor{DType: tensor.Bool, Shape: shape, B: v}
}

func sh(d ...int) []int { return append([]int{}, d...) }

// seq returns a float tensor of the given shape holding start, start+step, ...
func seq(start, step float32, shape ...int) *tensor.Tensor {
	x := tensor.New(shape...)
	for i := range x.F {
		x.F[i] = start + step*float32(i)
	}
	return x
}

func fwd(t testing.TB, k op.Kernel, in ...*tensor.Tensor) []*tensor.Tensor {
	t.Helper()
	out, err := k.Forward(in)
	if err != nil {
		t.Fatalf("forward: %v", err)
	}
	return out
}

// fwdErr runs Forward expecting an error that contains want.
func fwdErr(t testing.TB, k op.Kernel, want string, in ...*tensor.Tensor) {
	t.Helper()
	_, err := k.Forward(in)
	if err == nil {
		t.Fatalf("forward succeeded, want error containing %q", want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not contain %q", err, want)
	}
}

// near checks got against want (float64) with a relative+absolute tolerance.
func near(t testing.TB, got *tensor.Tensor, shape []int, want []float64, tol float64) {
	t.Helper()
	if got.DType != tensor.Float32 {
		t.Fatalf("got %s, want float32", got.DType)
	}
	if !tensor.SameShape(got.Shape, shape) {
		t.Fatalf("shape %v, want %v", got.Shape, shape)
	}
	if len(got.F) != len(want) {
		t.Fatalf("%d values, want %d", len(got.F), len(want))
	}
	bad := 0
	for i, w := range want {
		g := float64(got.F[i])
		if math.IsNaN(w) && math.IsNaN(g) {
			continue
		}
		if math.IsInf(w, 0) && g == w {
			continue
		}
		if math.Abs(g-w) > tol*(1+math.Abs(w)) || math.IsNaN(g) {
			if bad < 5 {
				t.Errorf("element %d: got %.9g, want %.9g", i, g, w)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d elements differ", bad, len(want))
	}
}

func f64(v ...float32) []float64 {
	r := make([]float64, len(v))
	for i, x := range v {
		r[i] = float64(x)
	}
	return r
}

func ints(t testing.TB, got *tensor.Tensor, shape []int, want ...int64) {
	t.Helper()
	if got.DType != tensor.Int64 || !tensor.SameShape(got.Shape, shape) {
		t.Fatalf("got %s%v, want int64%v", got.DType, got.Shape, shape)
	}
	for i, w := range want {
		if got.I[i] != w {
			t.Fatalf("got %v, want %v", got.I, want)
		}
	}
}

func bools(t testing.TB, got *tensor.Tensor, shape []int, want ...bool) {
	t.Helper()
	if got.DType != tensor.Bool || !tensor.SameShape(got.Shape, shape) {
		t.Fatalf("got %s%v, want bool%v", got.DType, got.Shape, shape)
	}
	for i, w := range want {
		if got.B[i] != w {
			t.Fatalf("got %v, want %v", got.B, want)
		}
	}
}

func backward(t testing.TB, k op.Kernel, in, gout []*tensor.Tensor, need ...bool) []*tensor.Tensor {
	t.Helper()
	out, err := k.Forward(in)
	if err != nil {
		t.Fatalf("forward: %v", err)
	}
	g, err := k.(op.Differentiable).Backward(in, out, gout, need)
	if err != nil {
		t.Fatalf("backward: %v", err)
	}
	return g
}

// refIndex maps an output flat index to the flat index of an operand of
// shape s broadcast to shape out (a naive reference for broadcasting).
func refIndex(o int, out, s []int) int {
	idx := make([]int, len(out))
	for d := len(out) - 1; d >= 0; d-- {
		idx[d] = o % out[d]
		o /= out[d]
	}
	off := len(out) - len(s)
	r := 0
	for d := range s {
		i := idx[d+off]
		if s[d] == 1 {
			i = 0
		}
		r = r*s[d] + i
	}
	return r
}
