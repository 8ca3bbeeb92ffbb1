package attr

import (
	"cmp"
	"context"
	"fmt"
	"math"

	"github.com/loupe-ml/loupe/linear"
	"github.com/loupe-ml/loupe/tensor"
)

// KernelShap estimates Shapley values with Lime's machinery and the
// Shapley kernel (Lundberg and Lee, NeurIPS 2017), as Captum: the first two
// samples are all features on and all off (weight 1e6), the others switch k
// random features on with probability proportional to (F-1)/(k(F-k)), and a
// least-squares fit gives the values. Cost: NSamples forward rows per
// example, in model calls that fit Options.MemoryBudget; the fit holds the
// NSamples × features design matrix, and with more features than samples
// solves the samples' Gram matrix (NSamples²) rather than a features ×
// features system, so one feature per scalar of an image is fine.
type KernelShap struct {
	Model Model
	// FeatureMask, PerturbationsPerEval, Seed and Samples are as Lime's;
	// NSamples 0 means 25.
	FeatureMask          []*tensor.Tensor
	NSamples             int
	PerturbationsPerEval int
	Seed                 uint64
	Samples              [][][]float64
}

// Attribute computes KernelShap values for o.Target from o.Baselines.
func (k *KernelShap) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	if err := checkCount("KernelShap", "NSamples", k.NSamples, MaxSamples); err != nil {
		return nil, err
	}
	l := &Lime{Model: k.Model, FeatureMask: k.FeatureMask, NSamples: cmp.Or(k.NSamples, 25), PerturbationsPerEval: k.PerturbationsPerEval,
		Interpretable: linear.LeastSquares{FitIntercept: true}, Seed: k.Seed, Samples: k.Samples, kernelShap: true}
	return l.Attribute(ctx, inputs, o)
}

// wideLeastSquares is linear.LeastSquares for problems with more features
// than samples: the minimum-norm solution b = Aᵀ(AAᵀ)⁺t of the centered,
// weight-scaled system A b = t is A⁺t, linear.LeastSquares' answer, found
// through the samples × samples Gram matrix AAᵀ instead of a features ×
// features one (181 GB for a 224x224x3 image with a feature per scalar).
// Memory: the centered design matrix and the Gram matrix; time:
// samples² × features.
type wideLeastSquares struct {
	FitIntercept bool
}

// Fit fits the model; with no more features than samples it is
// linear.LeastSquares.
func (f wideLeastSquares) Fit(X [][]float64, y, w []float64) (*linear.Model, error) {
	n := len(X)
	if n == 0 || len(X[0]) <= n {
		return linear.LeastSquares{FitIntercept: f.FitIntercept}.Fit(X, y, w)
	}
	d := len(X[0])
	if len(y) != n || (w != nil && len(w) != n) {
		return nil, fmt.Errorf("attr: least squares: %d targets and %d weights for %d samples", len(y), len(w), n)
	}
	for i, row := range X {
		if len(row) != d {
			return nil, fmt.Errorf("attr: least squares: sample %d has %d features, sample 0 has %d", i, len(row), d)
		}
		if bad(y[i]) || (w != nil && (bad(w[i]) || w[i] < 0)) {
			return nil, fmt.Errorf("attr: least squares: sample %d has a non-finite target or a bad weight", i)
		}
	}
	weight := func(i int) float64 {
		if w == nil {
			return 1
		}
		return w[i]
	}
	xm := make([]float64, d)
	ym := 0.0
	if f.FitIntercept {
		sw := 0.0
		for i, row := range X {
			wi := weight(i)
			sw += wi
			ym += wi * y[i]
			for j, v := range row {
				if bad(v) {
					return nil, fmt.Errorf("attr: least squares: sample %d has a non-finite feature", i)
				}
				xm[j] += wi * v
			}
		}
		if sw == 0 {
			return nil, fmt.Errorf("attr: least squares: the sample weights sum to 0")
		}
		ym /= sw
		for j := range xm {
			xm[j] /= sw
		}
	}
	a := make([][]float64, n)
	t := make([]float64, n)
	for i, row := range X {
		s := math.Sqrt(weight(i))
		a[i] = make([]float64, d)
		for j, v := range row {
			a[i][j] = s * (v - xm[j])
		}
		t[i] = s * (y[i] - ym)
	}
	g := make([][]float64, n)
	for i := range g {
		g[i] = make([]float64, n)
	}
	for i := range a {
		for j := 0; j <= i; j++ {
			s := 0.0
			for e, v := range a[i] {
				s += v * a[j][e]
			}
			g[i][j], g[j][i] = s, s
		}
	}
	c, err := linear.LeastSquares{}.Fit(g, t, nil)
	if err != nil {
		return nil, err
	}
	b := make([]float64, d)
	for i, ci := range c.Weights {
		for j, v := range a[i] {
			b[j] += ci * v
		}
	}
	bias := ym
	for j, v := range b {
		bias -= xm[j] * v
	}
	return &linear.Model{Weights: b, Bias: bias}, nil
}

func bad(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) }

// surrogateBytes estimates the memory a surrogate fit holds besides the
// design matrix (ns samples × m features) it is given: the copies and
// square systems of loupe's fitters; twice the design matrix for another
// Fitter.
func surrogateBytes(f linear.Fitter, ns, m int) int64 {
	d := mulBytes(mulBytes(int64(ns), int64(m)), 8)
	sq := func(k int) int64 { return mulBytes(mulBytes(int64(k), int64(k)), 8) }
	switch f.(type) {
	case linear.Lasso:
		return 3 * d // centered, scaled and by columns
	case linear.LeastSquares, wideLeastSquares:
		if m > ns {
			return d + 2*sq(ns) // centered and scaled; the Gram matrix and its solve
		}
		return 3*d + sq(m) // centered, scaled, by columns; the rotations
	case linear.Ridge:
		return 3*d + 3*sq(m) // and the augmented system, by columns, the rotations
	}
	return 2 * d
}

// fitSurrogate fits f, through wideLeastSquares for a least-squares fit
// with more features than samples.
func fitSurrogate(f linear.Fitter, zs [][]float64, ys, ws []float64) (*linear.Model, error) {
	if ls, ok := f.(linear.LeastSquares); ok && len(zs) > 0 && len(zs[0]) > len(zs) {
		return wideLeastSquares(ls).Fit(zs, ys, ws)
	}
	return f.Fit(zs, ys, ws)
}
