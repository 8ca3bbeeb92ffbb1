package attr

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/loupe-ml/loupe/linear"
	"github.com/loupe-ml/loupe/tensor"
)

// Lime explains each example by a weighted linear model fitted on random
// perturbations around it (Ribeiro, Singh and Guestrin, "Why Should I Trust
// You?", KDD 2016): a sample switches each interpretable feature (a
// FeatureMask group) on or off, off meaning the baseline's values; the
// model's target output on the samples is regressed on the on/off pattern,
// each sample weighted by its similarity to the example; every element gets
// its feature's coefficient. Cost: NSamples forward rows per example, in
// batches of PerturbationsPerEval (fewer when Options.MemoryBudget asks for
// it). The NSamples × features design matrix and the surrogate's fit must
// fit the budget: with a feature per scalar of an image, group features
// with FeatureMask or lower NSamples.
type Lime struct {
	Model Model
	// FeatureMask groups elements into interpretable features (ids shared
	// across inputs; nil: every element is a feature).
	FeatureMask []*tensor.Tensor
	// NSamples is the number of samples per example; 0 means 50, at most
	// MaxSamples (PerturbationsPerEval at most MaxBatch).
	NSamples             int
	PerturbationsPerEval int
	// Interpretable is the surrogate; nil means Captum's default, a lasso
	// with alpha 0.01.
	Interpretable linear.Fitter
	// Similarity weights a sample; nil means exp(-d²/2) with d the cosine
	// distance between the example and the sample (all inputs flattened
	// and concatenated), Captum's default kernel of width 1.
	Similarity func(orig, sample []*tensor.Tensor, z []float64) float64
	Seed       uint64
	// Samples, when set, replaces the random draws: per example, the
	// on/off patterns (NSamples × features, features in ascending id order).
	Samples [][][]float64

	kernelShap bool
}

// Attribute computes Lime attributions for o.Target, perturbing toward
// o.Baselines (nil: zeros).
func (l *Lime) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	n, base, err := batchAndBaselines(inputs, o.Baselines)
	if err != nil {
		return nil, err
	}
	if err := checkCount("Lime", "NSamples", l.NSamples, MaxSamples); err != nil {
		return nil, err
	}
	if err := checkCount("Lime", "PerturbationsPerEval", l.PerturbationsPerEval, MaxBatch); err != nil {
		return nil, err
	}
	ns := cmp.Or(l.NSamples, 50)
	if l.Samples != nil && len(l.Samples) != n {
		return nil, fmt.Errorf("attr: recorded samples for %d examples, the batch has %d", len(l.Samples), n)
	}
	fit := interpretable(l.Interpretable)
	rng := rand.New(rand.NewPCG(l.Seed, 0x6c696d65))
	attrs := zerosLike(inputs, false)
	name := "Lime"
	if l.kernelShap {
		name = "KernelShap"
	}
	// Progress counts evaluated samples.
	total, done := 0, 0
	for ex := 0; ex < n; ex++ {
		if l.Samples != nil {
			total += len(l.Samples[ex])
		} else {
			total += ns
		}
	}
	for ex := 0; ex < n; ex++ {
		one := []int{ex}
		x, b0 := selectRows(inputs, n, one), selectRows(base, n, one)
		masks := l.FeatureMask
		if masks != nil {
			masks = make([]*tensor.Tensor, len(l.FeatureMask))
			for i, m := range l.FeatureMask {
				if m != nil && m.Rank() == inputs[i].Rank() && m.Shape[0] == n && n > 1 {
					m = gatherRows(m, one)
				}
				masks[i] = m
			}
		}
		f, err := collectFeatures(x, masks)
		if err != nil {
			return nil, err
		}
		m := len(f.ids)
		// The design matrix and the fit are held for the example; the
		// model calls split what is left.
		held := surrogateBytes(fit, ns, m)
		if l.Samples == nil {
			held += mulBytes(int64(ns), 8*int64(m)+24)
		} else {
			held = surrogateBytes(fit, len(l.Samples[ex]), m)
		}
		what := fmt.Sprintf("the design matrix of n_samples=%d samples by %d features and its fit", ns, m)
		if l.Samples != nil {
			what = fmt.Sprintf("the fit of %d recorded samples by %d features", len(l.Samples[ex]), m)
		}
		b, err := newBudget(name, o)
		if err != nil {
			return nil, err
		}
		if err := b.hold(held, what, "lower n_samples, or group the features with a coarser feature_mask, or raise Options.MemoryBudget"); err != nil {
			return nil, err
		}
		var zs [][]float64
		if l.Samples != nil {
			zs = l.Samples[ex]
			for _, z := range zs {
				if len(z) != m {
					return nil, fmt.Errorf("attr: recorded sample has %d features, the mask has %d", len(z), m)
				}
			}
		} else if zs, err = l.draw(ctx, rng, ns, m); err != nil {
			return nil, err
		}
		exo := o
		exo.Target = o.Target.rows(one)
		exo.Additional = selectRows(o.Additional, n, one)
		ys := make([]float64, len(zs))
		ws := make([]float64, len(zs))
		per, err := perEvalWithin(ctx, name, l.Model, x, exo, perEval(l.PerturbationsPerEval, x, false), held)
		if err != nil {
			return nil, err
		}
		for s0, s1 := range chunks(len(zs), per) {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			coal := make([][]bool, 0, s1-s0)
			for _, z := range zs[s0:s1] {
				on := make([]bool, m)
				for k, v := range z {
					on[k] = v != 0
				}
				coal = append(coal, on)
			}
			batch := coalitionBatch(x, b0, f, coal)
			v, err := evalRows(ctx, l.Model, batch, exo, 1, len(coal))
			if err != nil {
				return nil, err
			}
			for s := s0; s < s1; s++ {
				ys[s] = float64(v[s-s0])
				ws[s] = l.weight(x, batch, s-s0, zs[s])
			}
			done += s1 - s0
			if o.Progress != nil {
				o.Progress(done, total)
			}
		}
		model, err := fitSurrogate(fit, zs, ys, ws)
		if err != nil {
			return nil, fmt.Errorf("attr: fitting the interpretable model for example %d: %w", ex, err)
		}
		for k := range f.ids {
			for i := range inputs {
				row := inputs[i].Len() / n
				for _, e := range f.cover[k][i] {
					attrs[i].F[ex*row+e] = float32(model.Weights[k])
				}
			}
		}
	}
	return &Result{Attributions: attrs}, nil
}

// interpretable returns the surrogate fitter, by default Captum's: a lasso
// with alpha 0.01.
func interpretable(f linear.Fitter) linear.Fitter {
	if f == nil {
		return linear.Lasso{Alpha: 0.01, FitIntercept: true}
	}
	return f
}

// draw returns ns on/off patterns over m features; it stops when ctx is
// done.
func (l *Lime) draw(ctx context.Context, rng *rand.Rand, ns, m int) ([][]float64, error) {
	zs := make([][]float64, ns)
	if !l.kernelShap {
		for s := range zs {
			if s%64 == 0 && ctx.Err() != nil {
				return nil, ctx.Err()
			}
			zs[s] = make([]float64, m)
			for k := range zs[s] {
				if rng.IntN(2) == 1 {
					zs[s][k] = 1
				}
			}
		}
		return zs, nil
	}
	// Shapley kernel: all on, all off, then k features on with
	// p(k) ∝ (m-1)/(k(m-k)).
	var cum []float64
	total := 0.0
	for k := 1; k < m; k++ {
		total += float64(m-1) / float64(k*(m-k))
		cum = append(cum, total)
	}
	for s := range zs {
		if s%64 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		z := make([]float64, m)
		switch {
		case s == 0:
			for k := range z {
				z[k] = 1
			}
		case s == 1 || m < 2:
		default:
			u := rng.Float64() * total
			k := 1
			for k < m-1 && cum[k-1] < u {
				k++
			}
			for _, j := range rng.Perm(m)[:k] {
				z[j] = 1
			}
		}
		zs[s] = z
	}
	return zs, nil
}

// weight returns the similarity weight of sample s of a batch.
func (l *Lime) weight(orig, batch []*tensor.Tensor, s int, z []float64) float64 {
	if l.kernelShap {
		on := 0
		for _, v := range z {
			if v != 0 {
				on++
			}
		}
		if on == 0 || on == len(z) {
			return 1e6
		}
		return 1
	}
	sample := make([]*tensor.Tensor, len(batch))
	for i, t := range batch {
		sample[i] = gatherRows(t, []int{s})
	}
	if l.Similarity != nil {
		return l.Similarity(orig, sample, z)
	}
	return CosineKernel(orig, sample, 1)
}

// LimeBase is Lime in its general form, as Captum's LimeBase: samples are
// drawn in an interpretable space by Perturb (or replayed from Samples),
// mapped to model inputs by FromInterp, weighted by Similarity, and the
// surrogate's coefficients are returned as one tensor [1, M] (Ribeiro,
// Singh and Guestrin, KDD 2016). Cost: NSamples forward rows, one model
// call each, for the one example.
type LimeBase struct {
	Model         Model
	NSamples      int
	Interpretable linear.Fitter
	// Perturb draws one interpretable sample of m features.
	Perturb func(rng *rand.Rand, inputs []*tensor.Tensor) []float64
	// FromInterp maps an interpretable sample to model inputs (one row).
	FromInterp func(z []float64, inputs []*tensor.Tensor) ([]*tensor.Tensor, error)
	// Similarity weights a sample (original inputs, mapped sample, z).
	Similarity func(orig, sample []*tensor.Tensor, z []float64) float64
	Seed       uint64
	Samples    [][]float64
}

// Attribute fits the surrogate for one example (inputs with a batch of 1).
func (l *LimeBase) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	n, err := batchOf(inputs)
	if err != nil {
		return nil, err
	}
	if n != 1 {
		return nil, fmt.Errorf("attr: LimeBase explains one example at a time, got a batch of %d", n)
	}
	if l.FromInterp == nil || l.Similarity == nil || (l.Perturb == nil && l.Samples == nil) {
		return nil, fmt.Errorf("attr: LimeBase needs Perturb (or Samples), FromInterp and Similarity")
	}
	if err := checkCount("LimeBase", "NSamples", l.NSamples, MaxSamples); err != nil {
		return nil, err
	}
	ns := cmp.Or(l.NSamples, 50)
	zs := l.Samples
	if zs == nil {
		rng := rand.New(rand.NewPCG(l.Seed, 0x6c62))
		for s := 0; s < ns; s++ {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			z := l.Perturb(rng, inputs)
			if s == 0 {
				// The samples are held until the fit.
				b, err := newBudget("LimeBase", o)
				if err != nil {
					return nil, err
				}
				if err := b.hold(mulBytes(int64(ns), 8*int64(len(z))+24)+surrogateBytes(interpretable(l.Interpretable), ns, len(z)),
					fmt.Sprintf("the design matrix of n_samples=%d samples by %d features and its fit", ns, len(z)),
					"lower n_samples, or raise Options.MemoryBudget"); err != nil {
					return nil, err
				}
			}
			zs = append(zs, z)
		}
	}
	ys := make([]float64, len(zs))
	ws := make([]float64, len(zs))
	for s, z := range zs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		x, err := l.FromInterp(z, inputs)
		if err != nil {
			return nil, err
		}
		v, err := evalRows(ctx, l.Model, x, o, 1, 1)
		if err != nil {
			return nil, err
		}
		ys[s] = float64(v[0])
		ws[s] = l.Similarity(inputs, x, z)
		if o.Progress != nil {
			o.Progress(s+1, len(zs))
		}
	}
	model, err := fitSurrogate(interpretable(l.Interpretable), zs, ys, ws)
	if err != nil {
		return nil, err
	}
	coef := tensor.New(1, len(model.Weights))
	for k, v := range model.Weights {
		coef.F[k] = float32(v)
	}
	return &Result{Attributions: []*tensor.Tensor{coef}}, nil
}

// CosineKernel is Lime's default similarity: exp(-d²/(2 width²)) with d one
// minus the cosine similarity of the two inputs (all tensors flattened and
// concatenated).
func CosineKernel(a, b []*tensor.Tensor, width float64) float64 {
	var dot, na, nb float64
	for i := range a {
		for e := 0; e < a[i].Len(); e++ {
			x, y := float64(float32(a[i].Float64At(e))), float64(float32(b[i].Float64At(e)))
			dot += x * y
			na += x * x
			nb += y * y
		}
	}
	const eps = 1e-8
	d := 1 - dot/(math.Max(math.Sqrt(na), eps)*math.Max(math.Sqrt(nb), eps))
	return math.Exp(-d * d / (2 * width * width))
}

// EuclideanKernel is exp(-||a-b||²/(2 width²)) over all tensors flattened.
func EuclideanKernel(a, b []*tensor.Tensor, width float64) float64 {
	var s float64
	for i := range a {
		for e := 0; e < a[i].Len(); e++ {
			d := a[i].Float64At(e) - b[i].Float64At(e)
			s += d * d
		}
	}
	return math.Exp(-s / (2 * width * width))
}

// EuclideanDistanceKernel is Captum's exponential kernel on the Euclidean
// distance: exp(-d²/(2 width²)) with d = ||a-b|| (all tensors flattened);
// the same as EuclideanKernel.
func EuclideanDistanceKernel(a, b []*tensor.Tensor, width float64) float64 {
	return EuclideanKernel(a, b, width)
}
