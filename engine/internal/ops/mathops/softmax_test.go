package mathops

import (
	"math"
	"testing"

	"github.com/loupe-ml/loupe/engine/internal/op/optest"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// refSoftmax computes the op over groups of a tensor laid out as
// [outer, n, inner], in float64.
func refSoftmax(kind string, x []float32, outer, n, inner int) []float64 {
	y := make([]float64, len(x))
	for o := 0; o < outer; o++ {
		for j := 0; j < inner; j++ {
			at := func(a int) int { return (o*n+a)*inner + j }
			m, mi := math.Inf(-1), 0
			for a := 0; a < n; a++ {
				if v := float64(x[at(a)]); v > m {
					m, mi = v, a
				}
			}
			s := 0.0
			for a := 0; a < n; a++ {
				s += math.Exp(float64(x[at(a)]) - m)
			}
			for a := 0; a < n; a++ {
				v := float64(x[at(a)])
				switch kind {
				case "Softmax":
					y[at(a)] = math.Exp(v-m) / s
				case "LogSoftmax":
					y[at(a)] = v - m - math.Log(s)
				default:
					if a == mi {
						y[at(a)] = 1
					}
				}
			}
		}
	}
	return y
}

func TestSoftmaxFamily(t *testing.T) {
	x := optest.Rand(7, 2, 3, 4)
	x.F[5] = x.F[6] // a tie for Hardmax: the first wins
	cases := []struct {
		opset           int
		axis            *int64
		outer, n, inner int
	}{
		{13, nil, 6, 4, 1},     // default -1
		{13, ptr(1), 2, 3, 4},  // one axis in the middle
		{13, ptr(0), 1, 2, 12}, // leading axis
		{13, ptr(-2), 2, 3, 4}, // negative
		{11, nil, 2, 12, 1},    // default 1, coerced to 2-D
		{11, ptr(2), 6, 4, 1},  // coerced
		{11, ptr(0), 1, 24, 1}, // whole tensor
		{11, ptr(-1), 6, 4, 1}, // negative, coerced
	}
	for _, kind := range []string{"Softmax", "LogSoftmax", "Hardmax"} {
		for _, c := range cases {
			var attrs []*graph.Attr
			if c.axis != nil {
				attrs = append(attrs, aI("axis", *c.axis))
			}
			k := kern(t, kind, c.opset, attrs...)
			want := refSoftmax(kind, x.F, c.outer, c.n, c.inner)
			near(t, fwd(t, k, x)[0], x.Shape, want, 3e-7)
			if kind != "Hardmax" {
				optest.GradCheck(t, k, []*tensor.Tensor{x}, []int{0}, optest.Options{Eps: 1e-3})
			}
		}
	}
	// Hardmax's gradient is zero.
	g := backward(t, kern(t, "Hardmax", 13), []*tensor.Tensor{x}, []*tensor.Tensor{optest.Rand(1, 2, 3, 4)}, true)
	near(t, g[0], x.Shape, make([]float64, 24), 0)
	// Large logits do not overflow.
	y := fwd(t, kern(t, "Softmax", 13), ft(sh(3), 1000, 1000, -1000))[0]
	near(t, y, sh(3), []float64{0.5, 0.5, 0}, 1e-7)
	fwdErr(t, kern(t, "Softmax", 13, aI("axis", 3)), "out of range", x)
	fwdErr(t, kern(t, "Softmax", 13), "want float32", it(sh(1), 1))
}

func TestSoftmaxLarge(t *testing.T) {
	x := optest.Rand(9, 64, 1000)
	for _, kind := range []string{"Softmax", "LogSoftmax"} {
		near(t, fwd(t, kern(t, kind, 13), x)[0], x.Shape, refSoftmax(kind, x.F, 64, 1000, 1), 3e-7)
		near(t, fwd(t, kern(t, kind, 13, aI("axis", 0)), x)[0], x.Shape, refSoftmax(kind, x.F, 1, 64, 1000), 3e-7)
	}
}

func ptr(v int64) *int64 { return &v }

// TestSoftmaxMaskedRelative checks rows with masked (-1e9, -1e4) and large
// logits on the vectorized path. Softmax is checked element by element in
// relative terms against a reference that, like PyTorch, rounds x - max to
// float32 before exponentiating.
func TestSoftmaxMaskedRelative(t *testing.T) {
	x := optest.Rand(5, 4, 40)
	for i := range x.F {
		x.F[i] *= 20
		switch i % 7 {
		case 3:
			x.F[i] = -1e9
		case 5:
			x.F[i] = -1e4
		}
	}
	x.F[50] = 3e4
	for _, axis := range []int64{-1, 0} {
		outer, n, inner := 4, 40, 1
		if axis == 0 {
			outer, n, inner = 1, 4, 40
		}
		// Reference: float32 shift, float64 exp and sum.
		want := make([]float64, len(x.F))
		for o := 0; o < outer; o++ {
			for j := 0; j < inner; j++ {
				at := func(a int) int { return (o*n+a)*inner + j }
				m := float32(math.Inf(-1))
				for a := 0; a < n; a++ {
					m = max(m, x.F[at(a)])
				}
				s := 0.0
				for a := 0; a < n; a++ {
					s += math.Exp(float64(x.F[at(a)] - m))
				}
				for a := 0; a < n; a++ {
					want[at(a)] = math.Exp(float64(x.F[at(a)]-m)) / s
				}
			}
		}
		got := fwd(t, kern(t, "Softmax", 13, aI("axis", axis)), x)[0]
		for i, w := range want {
			g := float64(got.F[i])
			if w < 1e-37 {
				if g > 1e-37 || g < 0 {
					t.Errorf("axis %d element %d: got %g, want %g", axis, i, g, w)
				}
				continue
			}
			if math.Abs(g-w) > 3e-7*w {
				t.Errorf("axis %d element %d: got %.9g, want %.9g", axis, i, g, w)
			}
		}
		near(t, fwd(t, kern(t, "LogSoftmax", 13, aI("axis", axis)), x)[0], x.Shape, refSoftmax("LogSoftmax", x.F, outer, n, inner), 3e-7)
	}
}
