package mathops

import (
	"math"
	"testing"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/engine/internal/op/optest"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

var generic = []float32{-2.7, -1.3, -0.4, 0.3, 0.9, 1.7, 2.2}
var positive = []float32{0.2, 0.5, 1.1, 2.3, 3.7}

func sigmoid64(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

func TestUnaryForwardAndGrad(t *testing.T) {
	const selA, selG = 1.67326319217681884765625, 1.05070102214813232421875
	cases := []struct {
		op    string
		attrs []*graph.Attr
		xs    []float32
		ref   func(float64) float64
		grad  bool
	}{
		{"Relu", nil, generic, func(x float64) float64 { return math.Max(x, 0) }, true},
		{"Sigmoid", nil, generic, sigmoid64, true},
		{"Tanh", nil, generic, math.Tanh, true},
		{"Exp", nil, generic, math.Exp, true},
		{"Log", nil, positive, math.Log, true},
		{"Neg", nil, generic, func(x float64) float64 { return -x }, true},
		{"Abs", nil, generic, math.Abs, true},
		{"Sqrt", nil, positive, math.Sqrt, true},
		{"Reciprocal", nil, generic, func(x float64) float64 { return 1 / x }, true},
		{"Erf", nil, generic, math.Erf, true},
		{"Softplus", nil, generic, func(x float64) float64 { return math.Log(1 + math.Exp(x)) }, true},
		{"Softsign", nil, generic, func(x float64) float64 { return x / (1 + math.Abs(x)) }, true},
		{"LeakyRelu", nil, generic, func(x float64) float64 {
			if x > 0 {
				return x
			}
			return 0.01 * float64(float32(x))
		}, true},
		{"LeakyRelu", []*graph.Attr{aF("alpha", 0.2)}, generic, func(x float64) float64 { return math.Max(x, 0.2*x) }, true},
		{"Elu", nil, generic, func(x float64) float64 {
			if x > 0 {
				return x
			}
			return math.Exp(x) - 1
		}, true},
		{"Elu", []*graph.Attr{aF("alpha", 0.5)}, generic, func(x float64) float64 {
			if x > 0 {
				return x
			}
			return 0.5 * (math.Exp(x) - 1)
		}, true},
		{"Selu", nil, generic, func(x float64) float64 {
			if x > 0 {
				return selG * x
			}
			return selG * selA * (math.Exp(x) - 1)
		}, true},
		{"HardSigmoid", nil, generic, func(x float64) float64 { return math.Min(math.Max(0.2*x+0.5, 0), 1) }, true},
		{"HardSigmoid", []*graph.Attr{aF("alpha", 1.0/6), aF("beta", 0.5)}, []float32{-4, -2.5, 0.5, 2.9, 3.5},
			func(x float64) float64 { return math.Min(math.Max(x/6+0.5, 0), 1) }, true},
		{"HardSwish", nil, []float32{-4, -2.5, -0.4, 0.5, 2.9, 3.5}, func(x float64) float64 {
			return x * math.Min(math.Max(x/6+0.5, 0), 1)
		}, true},
		{"Gelu", nil, generic, func(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }, true},
		{"Gelu", []*graph.Attr{aS("approximate", "tanh")}, generic, func(x float64) float64 {
			return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
		}, true},
		{"Sign", nil, generic, func(x float64) float64 { return math.Copysign(1, x) }, true},
		{"Floor", nil, generic, math.Floor, true},
		{"Ceil", nil, generic, math.Ceil, true},
		{"Round", nil, generic, math.RoundToEven, true},
		{"Sin", nil, generic, math.Sin, true},
		{"Cos", nil, generic, math.Cos, true},
	}
	for _, c := range cases {
		t.Run(c.op, func(t *testing.T) {
			k := kern(t, c.op, 17, c.attrs...)
			x := ft(sh(len(c.xs)), append([]float32(nil), c.xs...)...)
			want := make([]float64, len(c.xs))
			for i, v := range c.xs {
				want[i] = c.ref(float64(v))
			}
			near(t, fwd(t, k, x)[0], x.Shape, want, 2e-7)
			// On a 2-D tensor too (shape is kept).
			x2 := ft(sh(1, len(c.xs)), append([]float32(nil), c.xs...)...)
			near(t, fwd(t, k, x2)[0], x2.Shape, want, 2e-7)
			if c.grad {
				optest.GradCheck(t, k, []*tensor.Tensor{x}, []int{0}, optest.Options{Eps: 1e-3})
			}
		})
	}
}

// TestUnaryKinks checks the derivative conventions at kinks and special
// values.
func TestUnaryKinks(t *testing.T) {
	x := ft(sh(3), -1, 0, 2)
	g := ft(sh(3), 5, 5, 5)
	cases := []struct {
		op   string
		want []float64
	}{
		{"Relu", []float64{0, 0, 5}},            // derivative 0 at 0
		{"Abs", []float64{-5, 0, 5}},            // derivative 0 at 0
		{"LeakyRelu", []float64{0.05, 0.05, 5}}, // alpha at 0
		{"Elu", []float64{5 * math.Exp(-1), 5, 5}},
		{"Sign", []float64{0, 0, 0}},
		{"Floor", []float64{0, 0, 0}},
	}
	for _, c := range cases {
		k := kern(t, c.op, 17)
		gx := backward(t, k, []*tensor.Tensor{x}, []*tensor.Tensor{g}, true)
		near(t, gx[0], x.Shape, c.want, 1e-6)
	}
	// Nil output gradient: zeros.
	k := kern(t, "Tanh", 17)
	gx := backward(t, k, []*tensor.Tensor{x}, []*tensor.Tensor{nil}, true)
	near(t, gx[0], x.Shape, []float64{0, 0, 0}, 0)
	// need false: nil.
	gx = backward(t, k, []*tensor.Tensor{x}, []*tensor.Tensor{g}, false)
	if gx[0] != nil {
		t.Fatal("gradient computed although not needed")
	}
	// Relu propagates NaN like PyTorch; Sign keeps 0.
	y := fwd(t, kern(t, "Relu", 17), ft(sh(2), float32(math.NaN()), -0.0))[0]
	if !math.IsNaN(float64(y.F[0])) || y.F[1] != 0 {
		t.Fatalf("Relu(NaN, -0) = %v", y.F)
	}
	// Round is half to even.
	y = fwd(t, kern(t, "Round", 17), ft(sh(5), 0.5, 1.5, 2.5, -0.5, -1.5))[0]
	near(t, y, sh(5), []float64{0, 2, 2, 0, -2}, 0)
}

func TestUnaryInt64(t *testing.T) {
	x := it(sh(4), -3, 0, 2, -7)
	ints(t, fwd(t, kern(t, "Neg", 13), x)[0], sh(4), 3, 0, -2, 7)
	ints(t, fwd(t, kern(t, "Abs", 13), x)[0], sh(4), 3, 0, 2, 7)
	ints(t, fwd(t, kern(t, "Sign", 13), x)[0], sh(4), -1, 0, 1, -1)
	fwdErr(t, kern(t, "Relu", 13), "want float32", x)
	fwdErr(t, kern(t, "Exp", 13), "input 0 is missing")
}

func TestGeluBadAttr(t *testing.T) {
	_, err := registry["Gelu"](mkNode("Gelu", 1, aS("approximate", "fast")), 20)
	if err == nil {
		t.Fatal("want error for approximate=fast")
	}
}

func TestClip(t *testing.T) {
	x := ft(sh(6), -3, -1, 0, 0.5, 1, 4)
	// opset 6: attributes.
	k := kern(t, "Clip", 6, aF("min", -1), aF("max", 1))
	near(t, fwd(t, k, x)[0], x.Shape, []float64{-1, -1, 0, 0.5, 1, 1}, 0)
	// Gradient 1 at the boundaries (PyTorch's clamp).
	g := ft(sh(6), 1, 1, 1, 1, 1, 1)
	gx := backward(t, k, []*tensor.Tensor{x}, []*tensor.Tensor{g}, true)
	near(t, gx[0], x.Shape, []float64{0, 1, 1, 1, 1, 0}, 0)
	// opset 11+: inputs, min only, max only, none.
	k = kern(t, "Clip", 13)
	near(t, fwd(t, k, x, tensor.Scalar(-1), tensor.Scalar(1))[0], x.Shape, []float64{-1, -1, 0, 0.5, 1, 1}, 0)
	near(t, fwd(t, k, x, tensor.Scalar(0))[0], x.Shape, []float64{0, 0, 0, 0.5, 1, 4}, 0)
	near(t, fwd(t, k, x, nil, tensor.Scalar(0))[0], x.Shape, []float64{-3, -1, 0, 0, 0, 0}, 0)
	near(t, fwd(t, k, x)[0], x.Shape, f64(x.F...), 0)
	// int64.
	ints(t, fwd(t, k, it(sh(3), -5, 2, 9), tensor.ScalarInt(0), tensor.ScalarInt(4))[0], sh(3), 0, 2, 4)
	fwdErr(t, k, "want a scalar", x, ft(sh(2), 0, 1))
	fwdErr(t, k, "want float32", x, tensor.ScalarInt(0))
	// Gradients with respect to x, min and max.
	xs := ft(sh(6), -2.1, -0.7, 0.1, 0.4, 1.3, 2.6)
	optest.GradCheck(t, k, []*tensor.Tensor{xs, tensor.Scalar(-0.5), tensor.Scalar(1)}, []int{0, 1, 2}, optest.Options{Eps: 1e-3})
	optest.GradCheck(t, kern(t, "Clip", 6, aF("min", -0.5)), []*tensor.Tensor{xs}, []int{0}, optest.Options{Eps: 1e-3})
}

func TestIdentityDropout(t *testing.T) {
	x := ft(sh(2, 2), 1, 2, 3, 4)
	y := fwd(t, kern(t, "Identity", 13), x)[0]
	if y != x {
		t.Fatal("Identity should return its input")
	}
	ints(t, fwd(t, kern(t, "Identity", 13), it(sh(1), 7))[0], sh(1), 7)
	optest.GradCheck(t, kern(t, "Identity", 13), []*tensor.Tensor{x}, []int{0}, optest.Options{})

	// opset 10 attribute form; one output.
	k := kern(t, "Dropout", 10, aF("ratio", 0.3))
	out := fwd(t, k, x)
	if len(out) != 1 || out[0] != x {
		t.Fatalf("Dropout: got %d outputs", len(out))
	}
	// opset 13 with ratio and training_mode inputs, mask requested.
	k = kernN(t, "Dropout", 13, 2)
	out = fwd(t, k, x, tensor.Scalar(0.5), bt(sh(), false))
	if len(out) != 2 || out[0] != x {
		t.Fatalf("Dropout: got %d outputs", len(out))
	}
	bools(t, out[1], x.Shape, true, true, true, true)
	fwdErr(t, k, "training-mode", x, tensor.Scalar(0.5), bt(sh(), true))
	optest.GradCheck(t, k, []*tensor.Tensor{x, tensor.Scalar(0.5)}, []int{0}, optest.Options{})
}

func TestPRelu(t *testing.T) {
	k := kern(t, "PRelu", 16)
	x := ft(sh(1, 2, 2), -1, 2, -3, 4)
	s := ft(sh(2, 1), 0.1, 0.5)
	near(t, fwd(t, k, x, s)[0], x.Shape, []float64{-0.1, 2, -1.5, 4}, 1e-7)
	xr := optest.Rand(3, 2, 3, 2, 2)
	sr := ft(sh(3, 1, 1), 0.25, -0.5, 0.75)
	optest.GradCheck(t, k, []*tensor.Tensor{xr, sr}, []int{0, 1}, optest.Options{Eps: 1e-3})
	fwdErr(t, k, "does not broadcast", x, ft(sh(3), 1, 2, 3))
}

// TestUnaryLarge runs the parallel path and checks it against the serial
// loop.
func TestUnaryLarge(t *testing.T) {
	x := optest.Rand(5, 3, 40000)
	for _, name := range []string{"Relu", "Sigmoid", "Tanh", "Exp", "Gelu"} {
		k := kern(t, name, 17).(*unaryKernel)
		y := fwd(t, k, x)[0]
		want := make([]float32, len(x.F))
		k.fwd(want, x.F)
		if d := tensor.MaxAbsDiff(y.F, want); d != 0 {
			t.Fatalf("%s: parallel result differs by %g", name, d)
		}
		g := optest.Rand(6, 3, 40000)
		gx := backward(t, k, []*tensor.Tensor{x}, []*tensor.Tensor{g}, true)[0]
		wg := make([]float32, len(x.F))
		k.bwd(wg, g.F, x.F, y.F)
		if d := tensor.MaxAbsDiff(gx.F, wg); d != 0 {
			t.Fatalf("%s: parallel gradient differs by %g", name, d)
		}
	}
}

var _ op.Differentiable = (*unaryKernel)(nil)
