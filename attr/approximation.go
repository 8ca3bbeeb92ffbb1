package attr

import (
	"context"
	"fmt"
	"math"

	"github.com/loupe-ml/loupe/tensor"
)

// defaultNSteps is Captum's default number of integration points (n_steps).
const defaultNSteps = 50

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
	return stepsAndAlphasCtx(context.Background(), method, n)
}

// stepsAndAlphasCtx is stepsAndAlphas that stops when ctx is done: the
// Gauss-Legendre table costs O(n²) and takes seconds at MaxSteps.
func stepsAndAlphasCtx(ctx context.Context, method string, n int) (steps, alphas []float64, err error) {
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
		x, w, err := gaussLegendreCtx(ctx, n)
		if err != nil {
			return nil, nil, err
		}
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
	x, w, _ = gaussLegendreCtx(context.Background(), n)
	return x, w
}

// gaussLegendreCtx is gaussLegendre checking ctx before each root (each
// costs O(n)), so that a cancelled call returns within milliseconds even
// at MaxSteps points.
func gaussLegendreCtx(ctx context.Context, n int) (x, w []float64, err error) {
	x = make([]float64, n)
	w = make([]float64, n)
	for i := 0; i < (n+1)/2; i++ {
		if i%64 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, nil, err
			}
		}
		z := math.Cos(math.Pi * (float64(i) + 0.75) / (float64(n) + 0.5))
		for iter := 0; iter < 100; iter++ {
			p, dp := legendre(n, z)
			dz := p / dp
			z -= dz
			if math.Abs(dz) < 1e-16 {
				break
			}
		}
		// The derivative at the converged root.
		_, dp := legendre(n, z)
		x[n-1-i] = z
		x[i] = -z
		w[i] = 2 / ((1 - z*z) * dp * dp)
		w[n-1-i] = w[i]
	}
	if n%2 == 1 {
		x[n/2] = 0
	}
	return x, w, nil
}

// legendre returns the Legendre polynomial P_n and its derivative at z,
// by the three-term recurrence.
func legendre(n int, z float64) (p, dp float64) {
	p0, p1 := 1.0, z
	for k := 2; k <= n; k++ {
		p0, p1 = p1, ((2*float64(k)-1)*z*p1-(float64(k)-1)*p0)/float64(k)
	}
	if n == 1 {
		p1, p0 = z, 1
	}
	return p1, float64(n) * (z*p1 - p0) / (z*z - 1)
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

// path is the straight path from the baselines to the inputs of a path
// method, discretized by an integration rule: the points base + alpha*(x -
// base) and their quadrature weights (steps), evaluated per points at a
// time.
type path struct {
	method        string           // the method's name, for errors
	n             int              // examples
	base          []*tensor.Tensor // one baseline of the input's shape per input
	steps, alphas []float64
	per           int
}

// newPath checks the inputs and prepares the path of points points of an
// integration method, with at most internal_batch_size ibs rows per engine
// call (see stepsPerCall; walk lowers it to fit the memory budget). name
// is the attribution method's, for errors.
func newPath(ctx context.Context, name string, inputs []*tensor.Tensor, o Options, method string, points, ibs int) (*path, error) {
	if points < 1 || points > MaxSteps {
		return nil, fmt.Errorf("attr: NSteps=%d: want 0 (the default) or 1 to %d", points, MaxSteps)
	}
	if err := checkCount("path method", "InternalBatchSize", ibs, MaxBatch); err != nil {
		return nil, err
	}
	n, base, err := batchAndBaselines(inputs, o.Baselines)
	if err != nil {
		return nil, err
	}
	steps, alphas, err := stepsAndAlphasCtx(ctx, method, points)
	if err != nil {
		return nil, err
	}
	return &path{method: name, n: n, base: base, steps: steps, alphas: alphas, per: stepsPerCall(ibs, n, points, inputs)}, nil
}

// fit lowers the points per call to what o's memory budget allows, and
// refuses when one point for the whole batch does not fit: a point costs,
// per example, the interpolated input row, its gradient and the net's
// recorded pass with gradients (modelRowBytes); the baselines and the
// accumulated attributions are held for the whole call.
func (p *path) fit(ctx context.Context, nt *Net, inputs []*tensor.Tensor, o Options) error {
	b, err := newBudget(p.method, o)
	if err != nil {
		return err
	}
	if err := b.hold(2*tensorBytes(inputs), "the baselines and attributions of the batch", "explain fewer examples at once, or raise Options.MemoryBudget"); err != nil {
		return err
	}
	mrow, err := modelRowBytes(ctx, nt, inputs, o.Additional, p.n, true)
	if err != nil {
		return err
	}
	unit := mulBytes(int64(p.n), 2*rowBytes(inputs, p.n)+rowBytes(o.Additional, p.n)+mrow)
	per, err := b.units(unit, p.per, fmt.Sprintf("one step for a batch of %d example(s) (the model's recorded pass and gradients)", p.n),
		"explain fewer examples at once, or raise Options.MemoryBudget")
	if err != nil {
		return err
	}
	p.per = per
	return nil
}

// walk calls f for each chunk of k points from point s0 with the net's
// feeds of the chunk's rows (n*k of them, block-major: every example at one
// point, then every example at the next), and reports progress.
//
// Before the first call it splits the points to fit the memory budget
// (see fit), measuring the net on inputs, the tensors the rows stand for.
func (p *path) walk(ctx context.Context, nt *Net, inputs []*tensor.Tensor, rows func(s0, k int) []*tensor.Tensor, o Options, f func(s0, k int, feeds map[string]*tensor.Tensor) error) error {
	if err := p.fit(ctx, nt, inputs, o); err != nil {
		return err
	}
	points := len(p.alphas)
	for s0, s1 := range chunks(points, p.per) {
		if err := ctx.Err(); err != nil {
			return err
		}
		feeds, err := nt.feeds(rows(s0, s1-s0), o.Additional, p.n, s1-s0, false)
		if err != nil {
			return err
		}
		if err := f(s0, s1-s0, feeds); err != nil {
			return err
		}
		if o.Progress != nil {
			o.Progress(s1*p.n, points*p.n)
		}
	}
	return nil
}

// along returns the rows of a chunk of points for walk: the inputs
// interpolated from the baselines.
func (p *path) along(inputs []*tensor.Tensor) func(s0, k int) []*tensor.Tensor {
	return func(s0, k int) []*tensor.Tensor {
		scaled := make([]*tensor.Tensor, len(inputs))
		for i, x := range inputs {
			scaled[i] = interpolate(p.base[i], x, p.alphas[s0:s0+k])
		}
		return scaled
	}
}

// addWeighted adds to dst the blocks of g (each of dst's length), block s
// weighted by w[s]: one chunk's share of the quadrature sum.
func addWeighted(dst, g []float32, w []float64) {
	m := len(dst)
	for s := range w {
		ws := float32(w[s])
		for e, v := range g[s*m : (s+1)*m] {
			dst[e] += v * ws
		}
	}
}
