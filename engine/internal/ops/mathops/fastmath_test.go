package mathops

import (
	"math"
	"testing"
)

// ulps returns the distance in float32 ulps between a and b.
func ulps(a, b float32) int64 {
	ia, ib := int64(math.Float32bits(a)), int64(math.Float32bits(b))
	if ia < 0x80000000 != (ib < 0x80000000) {
		return math.MaxInt32
	}
	d := ia - ib
	if d < 0 {
		d = -d
	}
	return d
}

func one(f func(y, x []float32)) func(float32) float32 {
	return func(x float32) float32 {
		y := []float32{0}
		f(y, []float32{x})
		return y[0]
	}
}

var sigmoid32, tanh32, vexp32 = one(sigmoidSlice), one(tanhSlice), one(vExp)

func TestFastMathAccuracy(t *testing.T) {
	// check evaluates f on the whole range at once (the vectorized path,
	// with a tail of fewer than 8 elements) and on single elements.
	check := func(name string, f func(y, x []float32), ref func(float64) float64, lo, hi, step float32, tol int64) {
		var xs []float32
		for x := lo; x < hi; x += step {
			xs = append(xs, x)
		}
		ys := make([]float32, len(xs))
		f(ys, xs)
		worst := int64(0)
		for i, x := range xs {
			want := float32(ref(float64(x)))
			for _, got := range []float32{ys[i], one(f)(x)} {
				if got == want {
					continue
				}
				if d := ulps(got, want); d > worst {
					worst = d
					if d > tol {
						t.Errorf("%s(%g) = %g, want %g (%d ulps)", name, x, got, want, d)
					}
				}
			}
		}
	}
	check("exp", vExp, math.Exp, -104, 89, 0.0031, 2)
	check("sigmoid", sigmoidSlice, func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }, -110, 40, 0.0017, 2)
	check("tanh", tanhSlice, math.Tanh, -12, 12, 0.00013, 2)
	check("tanh-small", tanhSlice, math.Tanh, -0.04, 0.04, 1e-6, 1)
	for _, v := range []float32{-3, -1, 0, 2, 40} {
		if got, want := exp32(v), float32(math.Exp(float64(v))); ulps(got, want) > 1 {
			t.Errorf("exp32(%g) = %g, want %g", v, got, want)
		}
	}
	special := []struct {
		got, want float32
	}{
		{exp32(float32(math.Inf(1))), float32(math.Inf(1))},
		{exp32(float32(math.Inf(-1))), 0},
		{exp32(100), float32(math.Inf(1))},
		{vexp32(float32(math.Inf(1))), float32(math.Inf(1))},
		{vexp32(float32(math.Inf(-1))), 0},
		{sigmoid32(float32(math.Inf(-1))), 0},
		{sigmoid32(float32(math.Inf(1))), 1},
		{tanh32(float32(math.Inf(-1))), -1},
		{tanh32(1e-30), 1e-30},
	}
	for i, s := range special {
		if s.got != s.want {
			t.Errorf("special %d: got %g, want %g", i, s.got, s.want)
		}
	}
	nan := float32(math.NaN())
	for _, v := range []float32{exp32(nan), vexp32(nan), sigmoid32(nan), tanh32(nan)} {
		if !math.IsNaN(float64(v)) {
			t.Errorf("NaN input gave %g", v)
		}
	}
}

// TestFastMathSpecialVector checks infinities, NaN, zeros and extreme values
// on the vectorized path (16 elements, no tail).
func TestFastMathSpecialVector(t *testing.T) {
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	negZero := float32(math.Copysign(0, -1))
	xs := []float32{inf, -inf, nan, 0, negZero, 100, -100, 88.5, -88.5, 1e-30, -1e-30, 9.5, -50, 0.6, -0.7, 3}
	refs := []struct {
		name string
		f    func(y, x []float32)
		ref  func(float64) float64
	}{
		{"exp", vExp, math.Exp},
		{"sigmoid", sigmoidSlice, func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }},
		{"tanh", tanhSlice, math.Tanh},
	}
	for _, r := range refs {
		ys := make([]float32, len(xs))
		r.f(ys, xs)
		for i, x := range xs {
			want := float32(r.ref(float64(x)))
			got := ys[i]
			if want != want {
				if got == got {
					t.Errorf("%s(%g) = %g, want NaN", r.name, x, got)
				}
				continue
			}
			if ulps(got, want) > 2 || math.Signbit(float64(got)) != math.Signbit(float64(want)) {
				t.Errorf("%s(%g) = %g, want %g", r.name, x, got, want)
			}
		}
	}
}
