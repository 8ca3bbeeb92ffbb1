package mathops

import (
	"math"

	"github.com/viterin/vek/vek32"
)

// Vectorized loops over float32 slices, on top of the AVX2 kernels of
// github.com/viterin/vek (which nnops uses too; it falls back to plain Go
// on other CPUs). Only vek's exactly rounded operations are
// used (add, subtract, multiply, negate, maximum); its division, reciprocal
// and square root are approximations and are avoided. Its exp is accurate
// to about 1.4 ulp but only on [-87.5, 88]: vExp recomputes the elements
// outside that range.
//
// The helpers work in blocks of vblk elements so that vek's copy-then-modify
// pattern stays in the L1 cache.

const vblk = 1024

// vAdd sets dst = a + b (all of len(dst)).
func vAdd(dst, a, b []float32) {
	for len(dst) > 0 {
		n := min(len(dst), vblk)
		d := dst[:n]
		copy(d, a[:n])
		vek32.Add_Inplace(d, b[:n])
		dst, a, b = dst[n:], a[n:], b[n:]
	}
}

// vSub sets dst = a - b.
func vSub(dst, a, b []float32) {
	for len(dst) > 0 {
		n := min(len(dst), vblk)
		d := dst[:n]
		copy(d, a[:n])
		vek32.Sub_Inplace(d, b[:n])
		dst, a, b = dst[n:], a[n:], b[n:]
	}
}

// vMul sets dst = a * b.
func vMul(dst, a, b []float32) {
	for len(dst) > 0 {
		n := min(len(dst), vblk)
		d := dst[:n]
		copy(d, a[:n])
		vek32.Mul_Inplace(d, b[:n])
		dst, a, b = dst[n:], a[n:], b[n:]
	}
}

// vAddS sets dst = a + s.
func vAddS(dst, a []float32, s float32) {
	for len(dst) > 0 {
		n := min(len(dst), vblk)
		d := dst[:n]
		copy(d, a[:n])
		vek32.AddNumber_Inplace(d, s)
		dst, a = dst[n:], a[n:]
	}
}

// vMulS sets dst = a * s.
func vMulS(dst, a []float32, s float32) {
	for len(dst) > 0 {
		n := min(len(dst), vblk)
		d := dst[:n]
		copy(d, a[:n])
		vek32.MulNumber_Inplace(d, s)
		dst, a = dst[n:], a[n:]
	}
}

// vRSubS sets dst = s - b, computed as (-b) + s, which IEEE arithmetic
// rounds identically.
func vRSubS(dst, b []float32, s float32) {
	for len(dst) > 0 {
		n := min(len(dst), vblk)
		d := dst[:n]
		copy(d, b[:n])
		vek32.Neg_Inplace(d)
		vek32.AddNumber_Inplace(d, s)
		dst, b = dst[n:], b[n:]
	}
}

// vRelu sets dst = max(x, 0); NaN propagates.
func vRelu(dst, x []float32) {
	for len(dst) > 0 {
		n := min(len(dst), vblk)
		d := dst[:n]
		copy(d, x[:n])
		vek32.MaximumNumber_Inplace(d, 0)
		dst, x = dst[n:], x[n:]
	}
}

// expLo and expHi bound the arguments for which vek's exp is accurate.
const (
	expLo = -87.5
	expHi = 88
)

// vecExp reports whether vek's exp runs vectorized here (without AVX2 it
// falls back to a scalar exp that is off by up to 100 ulps near overflow).
var vecExp = vek32.Info().Acceleration

// vExpInplace replaces every element of d by its exponential; d must hold
// at most vblk elements. vek's AVX2 kernel does multiples of 8 elements;
// the tail and out-of-range arguments go through expScalar.
func vExpInplace(d []float32) {
	n8 := 0
	if vecExp {
		n8 = len(d) &^ 7
	}
	if v := d[:n8]; len(v) > 0 {
		if expInRange(v) {
			vek32.Exp_Inplace(v)
		} else {
			var orig [vblk]float32
			o := orig[:n8]
			copy(o, v)
			vek32.Exp_Inplace(v)
			for i, x := range o {
				if !(x >= expLo && x <= expHi) {
					v[i] = exp32(x)
				}
			}
		}
	}
	expScalar(d[n8:])
}

// expInRange reports whether every element of v is in [expLo, expHi]
// (none is NaN), with vectorized passes: a sum over values in range is
// finite, and it is NaN when an element is.
func expInRange(v []float32) bool {
	s := vek32.Sum(v)
	return s == s && vek32.Min(v) >= expLo && vek32.Max(v) <= expHi
}

// vExp sets y = e^x.
func vExp(y, x []float32) {
	for len(y) > 0 {
		n := min(len(y), vblk)
		d := y[:n]
		copy(d, x[:n])
		vExpInplace(d)
		y, x = y[n:], x[n:]
	}
}

// vExpShift sets y = e^(x-m) (the subtraction rounded in float32, as
// PyTorch's softmax does) and returns the sum of y in float64.
func vExpShift(y, x []float32, m float32) float64 {
	sum := 0.0
	for len(y) > 0 {
		n := min(len(y), vblk)
		d := y[:n]
		copy(d, x[:n])
		vek32.AddNumber_Inplace(d, -m)
		vExpInplace(d)
		sum = sumRun(sum, d)
		y, x = y[n:], x[n:]
	}
	return sum
}

// sigmoidSlice sets y = 1/(1+e^-x), the stable form for every x in float32
// (e^-x overflows to +Inf only where the result is 0), as PyTorch computes
// it.
func sigmoidSlice(y, x []float32) {
	var e [vblk]float32
	for len(y) > 0 {
		n := min(len(y), vblk)
		xb, yb, eb := x[:n], y[:n], e[:n]
		copy(eb, xb)
		vek32.Neg_Inplace(eb)
		vExpInplace(eb)
		for i, v := range xb {
			if v >= -expHi && v <= -expLo {
				yb[i] = 1 / (1 + eb[i])
			} else {
				yb[i] = float32(sigmoidd(float64(v)))
			}
		}
		y, x = y[n:], x[n:]
	}
}

// Coefficients of tanh(x) ≈ x + x³·P(x²) for |x| < tanhSmall, fitted for
// minimal relative error (0.75 ulp in float32 arithmetic).
const (
	tanhSmall = 0.625
	tc1       = -0.3333333080441304
	tc2       = 0.1333320609279025
	tc3       = -0.053946775368561996
	tc4       = 0.021700777446723385
	tc5       = -0.008177595167506149
	tc6       = 0.0021431522264989443
)

// tanhSlice sets y = tanh(x): the polynomial near 0 and
// sign(x)·(1-t)/(1+t) with t = e^(-2|x|) elsewhere (within 2 ulp).
func tanhSlice(y, x []float32) {
	var e [vblk]float32
	for len(y) > 0 {
		n := min(len(y), vblk)
		xb, yb, eb := x[:n], y[:n], e[:n]
		for i, v := range xb {
			eb[i] = -2 * min(abs32(v), 9) // tanh(9) rounds to 1
		}
		vExpInplace(eb)
		for i, v := range xb {
			t := eb[i]
			q := (1 - t) / (1 + t)
			u := v * v
			p := v + v*(u*(tc1+u*(tc2+u*(tc3+u*(tc4+u*(tc5+u*tc6))))))
			// Select without a branch (the sign of |v|-tanhSmall is
			// unpredictable): m is all ones where |v| < tanhSmall. q >= 0,
			// p has the sign of v except for -0: copy v's sign.
			m := uint32(int32(math.Float32bits(abs32(v)-tanhSmall)) >> 31)
			r := math.Float32bits(q)&^m | math.Float32bits(p)&m
			yb[i] = math.Float32frombits(r&^(1<<31) | math.Float32bits(v)&(1<<31))
			if v != v {
				yb[i] = v
			}
		}
		y, x = y[n:], x[n:]
	}
}
