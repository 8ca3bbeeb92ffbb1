package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// specials mixes NaNs, infinities and signed zeros into random values.
func specials(r *rand.Rand, n int) []float32 {
	nan := float32(math.NaN())
	sp := []float32{nan, -nan, float32(math.Inf(1)), float32(math.Inf(-1)), 0, float32(math.Copysign(0, -1)), 1e-40, -1e-40}
	x := make([]float32, n)
	for i := range x {
		if r.IntN(4) == 0 {
			x[i] = sp[r.IntN(len(sp))]
		} else {
			x[i] = float32(r.NormFloat64())
		}
	}
	return x
}

func same(a, b float32) bool {
	return a == b || (a != a && b != b)
}

func TestMaxInto(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for n := 0; n < 70; n++ {
		dst, src := specials(r, n), specials(r, n+3)
		want := make([]float32, n)
		for i := range want {
			a, b := dst[i], src[i]
			switch {
			case a != a || b != b:
				want[i] = float32(math.NaN())
			case b > a:
				want[i] = b
			default:
				want[i] = a
			}
		}
		MaxInto(dst, src)
		for i := range want {
			// Zeros of either sign are equal here; only NaN and order matter.
			if !same(dst[i], want[i]) {
				t.Fatalf("n=%d: [%d] = %v, want %v", n, i, dst[i], want[i])
			}
		}
	}
}

func TestReluGrad(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for n := 0; n < 70; n++ {
		g, y := specials(r, n+1), specials(r, n+2)
		dst := make([]float32, n)
		ReluGrad(dst, g, y)
		for i := range dst {
			want := float32(0)
			if !(y[i] <= 0) {
				want = g[i]
			}
			if math.Float32bits(dst[i]) != math.Float32bits(want) && !(dst[i] != dst[i] && want != want) {
				t.Fatalf("n=%d: [%d] = %v for g %v, y %v; want %v", n, i, dst[i], g[i], y[i], want)
			}
		}
		// In place.
		gg := append([]float32(nil), g[:n]...)
		ReluGrad(gg, gg, y)
		for i := range gg {
			if !same(gg[i], dst[i]) {
				t.Fatalf("in place n=%d: [%d] = %v, want %v", n, i, gg[i], dst[i])
			}
		}
	}
}
