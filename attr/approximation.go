package attr

import (
	"fmt"
	"math"

	"github.com/loupe-ml/loupe/tensor"
)

// Integration methods of IntegratedGradients, with Captum's names.
const (
	RiemannLeft      = "riemann_left"
	RiemannRight     = "riemann_right"
	RiemannMiddle    = "riemann_middle"
	RiemannTrapezoid = "riemann_trapezoid"
	GaussLegendre    = "gausslegendre"
)

// stepsAndAlphas returns the quadrature weights and points on [0,1] of an
// integration method with n points, as Captum computes them: Riemann points
// from a float32 linspace, Gauss-Legendre from the Legendre polynomial's
// roots in float64.
func stepsAndAlphas(method string, n int) (steps, alphas []float64, err error) {
	if n < 1 {
		return nil, nil, fmt.Errorf("attr: n_steps must be positive, got %d", n)
	}
	steps = make([]float64, n)
	switch method {
	case RiemannLeft, RiemannRight, RiemannMiddle:
		for i := range steps {
			steps[i] = 1 / float64(n)
		}
		fn := float64(n)
		switch method {
		case RiemannLeft:
			alphas = linspace32(0, 1-1/fn, n)
		case RiemannRight:
			alphas = linspace32(1/fn, 1, n)
		default:
			alphas = linspace32(1/(2*fn), 1-1/(2*fn), n)
		}
	case RiemannTrapezoid:
		if n < 2 {
			return nil, nil, fmt.Errorf("attr: riemann_trapezoid needs n_steps >= 2, got %d", n)
		}
		for i := range steps {
			steps[i] = 1 / float64(n)
		}
		steps[0] /= 2
		steps[n-1] /= 2
		alphas = linspace32(0, 1, n)
	case GaussLegendre, "":
		x, w := gaussLegendre(n)
		alphas = make([]float64, n)
		for i := range x {
			alphas[i] = 0.5 * (x[i] + 1)
			steps[i] = 0.5 * w[i]
		}
	default:
		return nil, nil, fmt.Errorf("attr: unknown integration method %q (want riemann_left, riemann_right, riemann_middle, riemann_trapezoid or gausslegendre)", method)
	}
	return steps, alphas, nil
}

// linspace32 mimics torch.linspace in float32: points computed from both
// ends toward the middle, then read back as float64.
func linspace32(start, end float64, n int) []float64 {
	out := make([]float64, n)
	if n == 1 {
		out[0] = float64(float32(start))
		return out
	}
	s, e := float32(start), float32(end)
	step := (e - s) / float32(n-1)
	half := n / 2
	for i := 0; i < n; i++ {
		if i < half {
			out[i] = float64(s + step*float32(i))
		} else {
			out[i] = float64(e - step*float32(n-1-i))
		}
	}
	return out
}

// gaussLegendre returns the nodes (ascending) and weights of n-point
// Gauss-Legendre quadrature on [-1,1], found by Newton's method.
func gaussLegendre(n int) (x, w []float64) {
	x = make([]float64, n)
	w = make([]float64, n)
	for i := 0; i < (n+1)/2; i++ {
		z := math.Cos(math.Pi * (float64(i) + 0.75) / (float64(n) + 0.5))
		var dp float64
		for iter := 0; iter < 100; iter++ {
			p0, p1 := 1.0, z
			for k := 2; k <= n; k++ {
				p0, p1 = p1, ((2*float64(k)-1)*z*p1-(float64(k)-1)*p0)/float64(k)
			}
			if n == 1 {
				p1, p0 = z, 1
			}
			dp = float64(n) * (z*p1 - p0) / (z*z - 1)
			dz := p1 / dp
			z -= dz
			if math.Abs(dz) < 1e-16 {
				break
			}
		}
		// Recompute the derivative at the converged root.
		p0, p1 := 1.0, z
		for k := 2; k <= n; k++ {
			p0, p1 = p1, ((2*float64(k)-1)*z*p1-(float64(k)-1)*p0)/float64(k)
		}
		if n == 1 {
			p1, p0 = z, 1
		}
		dp = float64(n) * (z*p1 - p0) / (z*z - 1)
		x[n-1-i] = z
		x[i] = -z
		w[i] = 2 / ((1 - z*z) * dp * dp)
		w[n-1-i] = w[i]
	}
	if n%2 == 1 {
		x[n/2] = 0
	}
	return x, w
}

// interpolate returns the rows b + alpha*(x-b) for each alpha, block by
// block (all examples at alpha 0, then all at alpha 1, ...), in float32 as
// PyTorch computes them.
func interpolate(b, x *tensor.Tensor, alphas []float64) *tensor.Tensor {
	shape := append([]int{x.Shape[0] * len(alphas)}, x.Shape[1:]...)
	out := tensor.New(shape...)
	m := x.Len()
	for s, al := range alphas {
		a := float32(al)
		dst := out.F[s*m : (s+1)*m]
		for e := range dst {
			dst[e] = b.F[e] + a*(x.F[e]-b.F[e])
		}
	}
	return out
}

// stepsPerCall returns how many path points go into one engine call: those
// that fit internal_batch_size rows, or when it is 0 about 2^20 input
// elements (at least one point).
func stepsPerCall(ibs, n, points int, inputs []*tensor.Tensor) int {
	if ibs > 0 {
		return max(1, ibs/n)
	}
	size := 0
	for _, x := range inputs {
		size += x.Len()
	}
	return max(1, min(points, (1<<20)/max(size, 1)))
}
