package mathops

import "math"

// Scalar functions in float32 precision. They compute in float64 and round
// once, so that results agree with PyTorch's float32 kernels to within an
// ulp; exp is a polynomial rather than math.Exp because it is about twice as
// fast, and tanh is built on it because math.Tanh is slow.

const (
	log2e   = 1.4426950408889634
	ln2hi   = 6.93147180369123816490e-01
	ln2lo   = 1.90821492927058770002e-10
	shifter = 6755399441055744.0 // 1.5 * 2^52: adding it rounds to an integer
)

// expd returns e^x with a relative error below 1e-11, far below float32's
// resolution. It is meant for results that are rounded to float32.
func expd(x float64) float64 {
	if !(x < 709) {
		if x != x {
			return x
		}
		return math.Inf(1)
	}
	if x < -708 {
		return 0
	}
	// x = n ln2 + r with |r| <= ln2/2; e^x = 2^n e^r.
	t := x*log2e + shifter
	n := t - shifter
	r := (x - n*ln2hi) - n*ln2lo
	r2 := r * r
	p := (1 + r) + r2*((1.0/2+r*(1.0/6))+r2*((1.0/24+r*(1.0/120))+
		r2*((1.0/720+r*(1.0/5040))+r2*(1.0/40320+r*(1.0/362880)))))
	// The low bits of t hold n (offset by 2^51, a multiple of 2^12).
	return p * math.Float64frombits((math.Float64bits(t)+1023)<<52)
}

// exp32 returns e^x rounded to float32.
func exp32(x float32) float32 { return float32(expd(float64(x))) }

// sigmoid32 returns 1/(1+e^-x), computed without overflow for either sign.
func sigmoid32(x float32) float32 {
	xd := float64(x)
	if xd >= 0 {
		return float32(1 / (1 + expd(-xd)))
	}
	e := expd(xd)
	return float32(e / (1 + e))
}

// tanhd returns tanh(x) with a relative error far below float32's.
func tanhd(x float64) float64 {
	a := math.Abs(x)
	if a < 0.03125 {
		x2 := x * x
		return x + x*x2*(-1.0/3+x2*(2.0/15+x2*(-17.0/315)))
	}
	if a > 10 {
		return math.Copysign(1, x)
	}
	e := expd(2 * a) // NaN stays NaN
	return math.Copysign(1-2/(e+1), x)
}

// tanh32 returns tanh(x) rounded to float32.
func tanh32(x float32) float32 { return float32(tanhd(float64(x))) }

// softplusd returns log(1+e^x) without overflow.
func softplusd(x float64) float64 {
	if x > 0 {
		return x + math.Log1p(expd(-x))
	}
	return math.Log1p(expd(x))
}
