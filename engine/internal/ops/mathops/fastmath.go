package mathops

import "math"

// Scalar transcendental functions for float32 tensors. They compute in
// float64 and round once, so results agree with PyTorch's float32 kernels to
// within an ulp. exp is a polynomial rather than math.Exp (about twice as
// fast), and tanh and sigmoid are built on it (math.Tanh is slow). The hot
// loops (Exp, Sigmoid, Tanh, Softmax) use the vectorized versions in vec.go
// instead.
//
// Loops over float32 data do not call float64 functions element by element:
// a float32<->float64 conversion (CVTSS2SD, CVTSD2SS) writes only part of
// its destination register, and when the compiler picks a register that
// still holds the previous element's result, every element waits for the
// previous one (measured: 4 to 7 times slower). The slice functions here
// convert a block into a float64 buffer, compute on it, and convert back.

const (
	log2e   = 1.4426950408889634
	ln2     = 0.6931471805599453
	shifter = 6755399441055744.0 // 1.5 * 2^52: adding it rounds to an integer
	blk     = 256                // block length of the slice functions
)

// expCore returns e^x for |x| <= 708, with a relative error below 3e-10,
// far below float32's resolution. It is small enough to be inlined.
func expCore(x float64) float64 {
	// x = n ln2 + r with |r| <= ln2/2; e^x = 2^n e^r. The low bits of t
	// hold n (offset by 2^51, a multiple of 2^12).
	t := x*log2e + shifter
	r := x - (t-shifter)*ln2
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720+r*(1.0/5040+r*(1.0/40320))))))))
	return p * math.Float64frombits((math.Float64bits(t)+1023)<<52)
}

// expd returns e^x for any x (accurate to float32 precision).
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
	return expCore(x)
}

// sigmoidd returns 1/(1+e^-x); in float64 this formula is accurate for
// every x (no cancellation, and e^-x overflows only where the result is 0
// in float32).
func sigmoidd(x float64) float64 {
	return 1 / (1 + expd(-x))
}

// tanhd returns tanh(x) with a relative error far below float32's.
func tanhd(x float64) float64 {
	a := math.Abs(x)
	if a < 0.03125 {
		x2 := x * x
		return x + x*x2*(-1.0/3+x2*(2.0/15+x2*(-17.0/315)))
	}
	if !(a <= 10) {
		if a != a {
			return x
		}
		return math.Copysign(1, x)
	}
	e := expCore(2 * a)
	return math.Copysign(1-2/(e+1), x)
}

// softplusd returns log(1+e^x) without overflow.
func softplusd(x float64) float64 {
	if x > 0 {
		return x + math.Log1p(expd(-x))
	}
	return math.Log1p(expd(x))
}

// exp32 returns e^x rounded to float32 (for scattered single values; loops
// use the slice functions).
func exp32(x float32) float32 { return float32(expd(float64(x))) }

// expScalar replaces every element of d by its exponential, in float64.
func expScalar(d []float32) {
	var buf [blk]float64
	for len(d) > 0 {
		n := min(len(d), blk)
		b := buf[:n]
		for i, v := range d[:n] {
			b[i] = float64(v)
		}
		for i, v := range b {
			if v > -708 && v < 709 {
				b[i] = expCore(v) // inlined; the rare rest goes through expd
			} else {
				b[i] = expd(v)
			}
		}
		for i, v := range b {
			d[i] = float32(v)
		}
		d = d[n:]
	}
}

// mapSlice sets y[i] = f(x[i]) through float64.
func mapSlice(y, x []float32, f func(float64) float64) {
	var buf [blk]float64
	for len(x) > 0 {
		n := min(len(x), blk)
		b := buf[:n]
		for i, v := range x[:n] {
			b[i] = float64(v)
		}
		for i, v := range b {
			b[i] = f(v)
		}
		for i, v := range b {
			y[i] = float32(v)
		}
		x, y = x[n:], y[n:]
	}
}
