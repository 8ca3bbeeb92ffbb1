package attr

import (
	"context"
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

// IntegratedGradients attributes by integrating the gradient along the
// straight path from a baseline to the input (Sundararajan, Taly and Yan,
// "Axiomatic Attribution for Deep Networks", ICML 2017):
//
//	attr_i = (x_i - b_i) * integral_0^1 dF(b + a(x-b))/dx_i da
//
// The integral is approximated with NSteps points of Method. The
// attributions of an example sum to F(x) - F(b) up to the approximation
// error, which the convergence delta measures. Cost: NSteps forward and
// backward rows per example (plus 2 forward rows for the delta), in batches
// of at most InternalBatchSize rows.
type IntegratedGradients struct {
	Net *Net
	// Method is the integration rule; "" means GaussLegendre, Captum's default.
	Method string
	// NSteps is the number of points; 0 means 50.
	NSteps int
	// InternalBatchSize bounds the rows per engine call; 0 chooses calls of
	// about 1M input elements (Captum's None runs all steps at once; the
	// results are the same, large batches are only slower).
	InternalBatchSize int
	// Local returns local attributions, not multiplied by (inputs - baselines):
	// Captum's multiply_by_inputs=False.
	Local bool
}

// Result is what an attribution method returns: one attribution tensor per
// input, and the convergence delta per row when the method has one and it
// was asked for.
type Result struct {
	Attributions []*tensor.Tensor
	Delta        *tensor.Tensor
}

// Attribute computes the attributions of inputs with respect to a.Target,
// from a.Baselines (nil: zeros). With a.Delta, it also returns the convergence
// delta per example: sum(attributions) - (F(x) - F(b)).
func (ig *IntegratedGradients) Attribute(ctx context.Context, inputs []*tensor.Tensor, a Options) (*Result, error) {
	n, err := batchOf(inputs)
	if err != nil {
		return nil, err
	}
	nsteps := ig.NSteps
	if nsteps == 0 {
		nsteps = 50
	}
	steps, alphas, err := stepsAndAlphas(ig.Method, nsteps)
	if err != nil {
		return nil, err
	}
	base, err := baselinesFor(a.Baselines, inputs)
	if err != nil {
		return nil, err
	}
	for i, x := range inputs {
		if x.DType != tensor.Float32 {
			return nil, fmt.Errorf("attr: input %d is %s; integrated gradients needs float inputs (use LayerIntegratedGradients on an embedding for token ids)", i, x.DType)
		}
	}
	total := make([]*tensor.Tensor, len(inputs))
	for i, x := range inputs {
		total[i] = tensor.New(x.Shape...)
	}
	// Steps per engine call.
	per := stepsPerCall(ig.InternalBatchSize, n, nsteps, inputs)
	done := 0
	for s0 := 0; s0 < nsteps; s0 += per {
		s1 := min(nsteps, s0+per)
		k := s1 - s0
		scaled := make([]*tensor.Tensor, len(inputs))
		for i, x := range inputs {
			scaled[i] = interpolate(base[i], x, alphas[s0:s1])
		}
		feeds, err := ig.Net.feeds(scaled, a.Additional, n, k, false)
		if err != nil {
			return nil, err
		}
		_, grads, err := ig.Net.gradOf(ctx, feeds, a.Target.expand(n, k, false), nil)
		if err != nil {
			return nil, err
		}
		for i, g := range grads {
			row := inputs[i].Len()
			for s := 0; s < k; s++ {
				w := float32(steps[s0+s])
				src := g.F[s*row : (s+1)*row]
				dst := total[i].F
				for e, v := range src {
					dst[e] += v * w
				}
			}
		}
		done += k * n
		if a.Progress != nil {
			a.Progress(done, nsteps*n)
		}
	}
	res := &Result{Attributions: total}
	if !ig.Local {
		for i, x := range inputs {
			for e := range total[i].F {
				total[i].F[e] *= x.F[e] - base[i].F[e]
			}
		}
	}
	if a.Delta {
		d, err := convergenceDelta(ctx, ig.Net, inputs, base, res.Attributions, a)
		if err != nil {
			return nil, err
		}
		res.Delta = d
	}
	return res, nil
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

// convergenceDelta returns, per example, the sum of the attributions over
// all inputs minus (F(x) - F(b)) at the target.
func convergenceDelta(ctx context.Context, nt *Net, inputs, base, attrs []*tensor.Tensor, a Options) (*tensor.Tensor, error) {
	n := inputs[0].Shape[0]
	fx, err := targetValues(ctx, nt, inputs, a, n)
	if err != nil {
		return nil, err
	}
	fb, err := targetValues(ctx, nt, base, a, n)
	if err != nil {
		return nil, err
	}
	d := tensor.New(n)
	for r := 0; r < n; r++ {
		d.F[r] = rowSum(attrs, r, n) - (fx[r] - fb[r])
	}
	return d, nil
}

// targetValues evaluates the net on a batch and returns the target output
// of each row.
func targetValues(ctx context.Context, nt *Net, inputs []*tensor.Tensor, a Options, n int) ([]float32, error) {
	feeds, err := nt.feeds(inputs, a.Additional, n, 1, false)
	if err != nil {
		return nil, err
	}
	out, err := nt.eval(ctx, feeds)
	if err != nil {
		return nil, err
	}
	return a.Target.pick(out)
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
