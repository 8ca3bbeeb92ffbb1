package mathops

import (
	"math"
	"testing"

	"github.com/loupe-ml/loupe/engine/internal/op/optest"
	"github.com/loupe-ml/loupe/tensor"
)

var broadcastCases = []struct{ a, b []int }{
	{sh(2, 3), sh(2, 3)},
	{sh(2, 3), sh()},
	{sh(), sh(2, 3)},
	{sh(2, 3), sh(3)},
	{sh(2, 3), sh(2, 1)},
	{sh(2, 1, 4), sh(3, 1)},
	{sh(1), sh(2, 3)},
	{sh(2, 3, 4, 5), sh(1, 3, 1, 1)},
	{sh(2, 3, 4, 5), sh(3, 1, 1)},
	{sh(1, 3, 1, 5), sh(2, 1, 4, 1)},
	{sh(4, 1), sh(1, 5)},
}

func TestBinaryBroadcast(t *testing.T) {
	refs := map[string]func(a, b float64) float64{
		"Add": func(a, b float64) float64 { return a + b },
		"Sub": func(a, b float64) float64 { return a - b },
		"Mul": func(a, b float64) float64 { return a * b },
		"Div": func(a, b float64) float64 { return a / b },
		"Pow": math.Pow,
		"Max": math.Max,
		"Min": math.Min,
	}
	for name, ref := range refs {
		for ci, c := range broadcastCases {
			a := optest.Rand(uint64(ci), c.a...)
			b := optest.Rand(uint64(ci+100), c.b...)
			if name == "Pow" || name == "Div" {
				// Positive base for Pow; divisors away from 0.
				for i := range a.F {
					a.F[i] = 0.5 + float32(math.Abs(float64(a.F[i])))
				}
				for i := range b.F {
					b.F[i] = 0.5 + float32(math.Abs(float64(b.F[i])))
				}
			}
			out, _ := tensor.BroadcastShape(c.a, c.b)
			want := make([]float64, tensor.Size(out))
			for o := range want {
				want[o] = ref(float64(a.F[refIndex(o, out, c.a)]), float64(b.F[refIndex(o, out, c.b)]))
			}
			k := kern(t, name, 13)
			near(t, fwd(t, k, a, b)[0], out, want, 1e-6)
			optest.GradCheck(t, k, []*tensor.Tensor{a, b}, []int{0, 1}, optest.Options{Eps: 1e-3, Seed: uint64(ci)})
		}
	}
}

func TestBinaryLarge(t *testing.T) {
	// Parallel paths: equal shapes, scalar, bias along channels.
	a := optest.Rand(1, 2, 16, 48, 48)
	for _, bs := range [][]int{{2, 16, 48, 48}, {}, {16, 1, 1}, {48}} {
		b := optest.Rand(2, bs...)
		y := fwd(t, kern(t, "Mul", 13), a, b)[0]
		want := make([]float64, len(a.F))
		for o := range want {
			want[o] = float64(a.F[o] * b.F[refIndex(o, a.Shape, bs)])
		}
		near(t, y, a.Shape, want, 0)
		g := optest.Rand(3, a.Shape...)
		gr := backward(t, kern(t, "Add", 13), []*tensor.Tensor{a, b}, []*tensor.Tensor{g}, true, true)
		wb := make([]float64, len(b.F))
		for o, v := range g.F {
			wb[refIndex(o, a.Shape, bs)] += float64(v)
		}
		near(t, gr[1], b.Shape, wb, 1e-5)
	}
}

func TestBinaryInt64(t *testing.T) {
	a := it(sh(2, 3), 7, -7, 7, 6, 0, -9)
	b := it(sh(3), 2, 2, -2)
	ints(t, fwd(t, kern(t, "Div", 13), a, b)[0], sh(2, 3), 3, -3, -3, 3, 0, 4)
	ints(t, fwd(t, kern(t, "Add", 13), a, b)[0], sh(2, 3), 9, -5, 5, 8, 2, -11)
	ints(t, fwd(t, kern(t, "Sub", 13), a, b)[0], sh(2, 3), 5, -9, 9, 4, -2, -7)
	ints(t, fwd(t, kern(t, "Mul", 13), a, tensor.ScalarInt(3))[0], sh(2, 3), 21, -21, 21, 18, 0, -27)
	ints(t, fwd(t, kern(t, "Max", 13), a, b)[0], sh(2, 3), 7, 2, 7, 6, 2, -2)
	ints(t, fwd(t, kern(t, "Min", 13), a, b)[0], sh(2, 3), 2, -7, -2, 2, 0, -9)
	ints(t, fwd(t, kern(t, "Pow", 13), it(sh(3), 2, -3, 5), it(sh(3), 10, 3, 0))[0], sh(3), 1024, -27, 1)
	ints(t, fwd(t, kern(t, "Sum", 13), a, b, tensor.ScalarInt(1))[0], sh(2, 3), 10, -4, 6, 9, 3, -10)
	fwdErr(t, kern(t, "Div", 13), "division by zero", a, it(sh(3), 1, 0, 1))
	fwdErr(t, kern(t, "Add", 13), "want the same type", a, ft(sh(3), 1, 2, 3))
	fwdErr(t, kern(t, "Add", 13), "want float32 or int64", bt(sh(1), true), bt(sh(1), true))
	// Integer inputs get no gradient.
	g := backward(t, kern(t, "Mul", 13), []*tensor.Tensor{a, b}, []*tensor.Tensor{nil}, true, true)
	if g[0] != nil || g[1] != nil {
		t.Fatal("int64 inputs got gradients")
	}
}

func TestBinaryErrors(t *testing.T) {
	for _, name := range []string{"Add", "Sub", "Mul", "Div", "Pow", "Max", "Sum", "Mean"} {
		k := kern(t, name, 13)
		fwdErr(t, k, "do not broadcast", ft(sh(2, 3)), ft(sh(4)))
		fwdErr(t, k, "missing", ft(sh(2)), nil)
	}
	// Malformed tensor: data does not fill the shape.
	fwdErr(t, kern(t, "Add", 13), "holds 2 values", &tensor.Tensor{DType: tensor.Float32, Shape: []int{3}, F: []float32{1, 2}}, ft(sh(3)))
}

func TestPow(t *testing.T) {
	k := kern(t, "Pow", 15)
	x := ft(sh(4), -1.5, 0, 2, 3)
	near(t, fwd(t, k, x, tensor.Scalar(2))[0], x.Shape, []float64{2.25, 0, 4, 9}, 0)
	near(t, fwd(t, k, x, tensor.ScalarInt(3))[0], x.Shape, []float64{-3.375, 0, 8, 27}, 0)
	near(t, fwd(t, k, ft(sh(2), 4, 9), tensor.Scalar(0.5))[0], sh(2), []float64{2, 3}, 0)
	ints(t, fwd(t, k, it(sh(2), 4, 9), tensor.Scalar(0.5))[0], sh(2), 2, 3)
	// Gradient with an int64 exponent: only the base.
	xs := ft(sh(3), -1.2, 0.7, 2.1)
	optest.GradCheck(t, k, []*tensor.Tensor{xs, tensor.ScalarInt(3)}, []int{0}, optest.Options{Eps: 1e-3})
	g := backward(t, k, []*tensor.Tensor{xs, tensor.ScalarInt(3)}, []*tensor.Tensor{ft(sh(3), 1, 1, 1)}, true, true)
	if g[1] != nil {
		t.Fatal("int exponent got a gradient")
	}
	// PyTorch conventions: d/dbase is 0 where exponent == 0; d/dexp is 0
	// where base == 0 and exponent >= 0.
	g = backward(t, k, []*tensor.Tensor{ft(sh(2), 0, 2), ft(sh(2), 0.5, 0)}, []*tensor.Tensor{ft(sh(2), 1, 1)}, true, true)
	if g[0].F[1] != 0 || g[1].F[0] != 0 {
		t.Fatalf("pow gradients %v %v", g[0].F, g[1].F)
	}
}

func TestVariadic(t *testing.T) {
	a := ft(sh(2, 3), 1, 5, 3, -2, 0, 4)
	b := ft(sh(3), 2, 5, -1)
	c := ft(sh(2, 1), 0, 3)
	near(t, fwd(t, kern(t, "Sum", 13), a, b, c)[0], sh(2, 3), []float64{3, 10, 2, 3, 8, 6}, 0)
	near(t, fwd(t, kern(t, "Mean", 13), a, b, c)[0], sh(2, 3), []float64{1, 10.0 / 3, 2.0 / 3, 1, 8.0 / 3, 2}, 1e-7)
	near(t, fwd(t, kern(t, "Max", 13), a, b, c)[0], sh(2, 3), []float64{2, 5, 3, 3, 5, 4}, 0)
	near(t, fwd(t, kern(t, "Min", 13), a, b, c)[0], sh(2, 3), []float64{0, 0, -1, -2, 0, -1}, 0)
	// One input: returned as is.
	if y := fwd(t, kern(t, "Max", 13), a)[0]; y != a {
		t.Fatal("Max of one input should return it")
	}
	// Ties split the gradient evenly (torch.maximum).
	g := backward(t, kern(t, "Max", 13), []*tensor.Tensor{ft(sh(2), 1, 3), ft(sh(2), 1, 2)}, []*tensor.Tensor{ft(sh(2), 4, 4)}, true, true)
	near(t, g[0], sh(2), []float64{2, 4}, 0)
	near(t, g[1], sh(2), []float64{2, 0}, 0)
	for _, name := range []string{"Sum", "Mean", "Max", "Min"} {
		k := kern(t, name, 13)
		x0 := optest.Rand(1, 2, 3)
		x1 := optest.Rand(2, 3)
		x2 := optest.Rand(3, 2, 1)
		optest.GradCheck(t, k, []*tensor.Tensor{x0, x1, x2}, []int{0, 1, 2}, optest.Options{Eps: 1e-3})
		optest.GradCheck(t, k, []*tensor.Tensor{x0}, []int{0}, optest.Options{Eps: 1e-3})
	}
}
