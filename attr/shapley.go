package attr

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/loupe-ml/loupe/tensor"
)

// ShapleyValueSampling estimates Shapley values by sampling permutations of
// the features (Castro, Gómez and Tejada, "Polynomial calculation of the
// Shapley value based on sampling", 2009): for each permutation the
// features are switched from baseline to input one by one and each is
// credited with the change of the target output. For every permutation the
// attributions sum exactly to F(x) - F(baseline). Cost: 1 + NSamples*F
// forward rows per example, in batches of PerturbationsPerEval (fewer when
// Options.MemoryBudget asks for it); the permutations are drawn one at a
// time, and progress is reported per evaluated coalition.
type ShapleyValueSampling struct {
	Model Model
	// FeatureMask groups elements into features; ids are shared across
	// inputs (nil: every element is a feature).
	FeatureMask []*tensor.Tensor
	// NSamples is the number of permutations; 0 means 25, at most
	// MaxSamples (PerturbationsPerEval at most MaxBatch).
	NSamples             int
	PerturbationsPerEval int
	// Seed seeds the permutations.
	Seed uint64
	// Permutations, when set, replaces the random draws: each lists every
	// feature id once, in the order the features are switched on.
	Permutations [][]int
}

// Attribute computes the sampled Shapley values for o.Target.
func (s *ShapleyValueSampling) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	if err := checkCount("ShapleyValueSampling", "NSamples", s.NSamples, MaxSamples); err != nil {
		return nil, err
	}
	if err := checkCount("ShapleyValueSampling", "PerturbationsPerEval", s.PerturbationsPerEval, MaxBatch); err != nil {
		return nil, err
	}
	n, base, f, err := featureSetup(inputs, o, s.FeatureMask)
	if err != nil {
		return nil, err
	}
	m := len(f.ids)
	var perms [][]int // recorded permutations, as feature positions
	if s.Permutations != nil {
		pos := map[int64]int{}
		for k, id := range f.ids {
			pos[id] = k
		}
		for _, p := range s.Permutations {
			if len(p) != m {
				return nil, fmt.Errorf("attr: permutation of %d features, the masks have %d", len(p), m)
			}
			q := make([]int, len(p))
			seen := make([]bool, m)
			for j, id := range p {
				k, ok := pos[int64(id)]
				if !ok || seen[k] {
					return nil, fmt.Errorf("attr: permutation %v is not a permutation of the feature ids %v", p, f.ids)
				}
				seen[k] = true
				q[j] = k
			}
			perms = append(perms, q)
		}
	}
	ns := cmp.Or(s.NSamples, 25)
	if perms != nil {
		ns = len(perms)
	}
	// Held for the call: the values per feature and example, the current
	// permutation and coalition; random permutations are drawn one at a
	// time.
	held := mulBytes(int64(m), 8*int64(n)+40)
	per, err := perEvalWithin(ctx, "ShapleyValueSampling", s.Model, inputs, o, perEval(s.PerturbationsPerEval, inputs, false), held)
	if err != nil {
		return nil, err
	}
	vals := make([][]float64, m)
	for k := range vals {
		vals[k] = make([]float64, n)
	}
	prev0, err := evalRows(ctx, s.Model, base, o, n, 1)
	if err != nil {
		return nil, err
	}
	if len(prev0) != n {
		return nil, fmt.Errorf("attr: ShapleyValueSampling needs one output per example")
	}
	rng := rand.New(rand.NewPCG(s.Seed, 0x737673))
	total := ns * m
	done := 0
	for i := 0; i < ns; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var p []int
		if perms != nil {
			p = perms[i]
		} else {
			p = rng.Perm(m)
		}
		prev := prev0
		on := make([]bool, m)
		for j0, j1 := range chunks(m, per) {
			coal := make([][]bool, 0, j1-j0)
			for j := j0; j < j1; j++ {
				on[p[j]] = true
				coal = append(coal, slices.Clone(on))
			}
			v, err := evalCoalitions(ctx, s.Model, inputs, base, f, coal, o, n)
			if err != nil {
				return nil, err
			}
			if len(v) != n*len(coal) {
				return nil, fmt.Errorf("attr: ShapleyValueSampling needs one output per example")
			}
			for j := j0; j < j1; j++ {
				cur := v[(j-j0)*n : (j-j0+1)*n]
				for r := 0; r < n; r++ {
					vals[p[j]][r] += float64(cur[r] - prev[r])
				}
				prev = cur
			}
			done += j1 - j0
			if o.Progress != nil {
				o.Progress(done, total)
			}
		}
	}
	for k := range vals {
		for r := range vals[k] {
			vals[k][r] /= float64(ns)
		}
	}
	return &Result{Attributions: spread(inputs, f, vals, n)}, nil
}

// ShapleyValues computes exact Shapley values (Shapley, 1953) by evaluating
// the model on all 2^F coalitions of the F features and weighting each
// marginal contribution by |S|!(F-|S|-1)!/F!; this equals Captum's average
// over all F! permutations. Cost: 2^F forward rows per example, in batches
// of PerturbationsPerEval; it refuses more than MaxFeatures features.
type ShapleyValues struct {
	Model Model
	// FeatureMask and PerturbationsPerEval are as ShapleyValueSampling's.
	FeatureMask          []*tensor.Tensor
	PerturbationsPerEval int
	// MaxFeatures bounds F; 0 means 12 (4096 coalitions), at most
	// MaxExactFeatures.
	MaxFeatures int
}

// Attribute computes exact Shapley values for o.Target.
func (s *ShapleyValues) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	if err := checkCount("ShapleyValues", "PerturbationsPerEval", s.PerturbationsPerEval, MaxBatch); err != nil {
		return nil, err
	}
	if err := checkCount("ShapleyValues", "MaxFeatures", s.MaxFeatures, MaxExactFeatures); err != nil {
		return nil, err
	}
	n, base, f, err := featureSetup(inputs, o, s.FeatureMask)
	if err != nil {
		return nil, err
	}
	m := len(f.ids)
	limit := cmp.Or(s.MaxFeatures, 12)
	if m > limit {
		return nil, fmt.Errorf("attr: ShapleyValues over %d features needs 2^%d model evaluations per example; group features with a feature mask, use ShapleyValueSampling, or raise MaxFeatures (now %d)", m, m, limit)
	}
	total := 1 << m
	// Held: the target value of every coalition and example, and the
	// values.
	per, err := perEvalWithin(ctx, "ShapleyValues", s.Model, inputs, o, perEval(s.PerturbationsPerEval, inputs, false),
		mulBytes(int64(total), 4*int64(n)+24)+mulBytes(int64(m), 8*int64(n)))
	if err != nil {
		return nil, err
	}
	out := make([][]float32, total) // per coalition, per example
	for c0, c1 := range chunks(total, per) {
		coal := make([][]bool, 0, c1-c0)
		for c := c0; c < c1; c++ {
			on := make([]bool, m)
			for k := range on {
				on[k] = c&(1<<k) != 0
			}
			coal = append(coal, on)
		}
		v, err := evalCoalitions(ctx, s.Model, inputs, base, f, coal, o, n)
		if err != nil {
			return nil, err
		}
		if len(v) != n*len(coal) {
			return nil, fmt.Errorf("attr: ShapleyValues needs one output per example")
		}
		for c := c0; c < c1; c++ {
			out[c] = v[(c-c0)*n : (c-c0+1)*n]
		}
		if o.Progress != nil {
			o.Progress(c1, total)
		}
	}
	// weight[s] = s!(m-s-1)!/m!
	weight := make([]float64, m)
	for sz := range weight {
		weight[sz] = math.Exp(lgamma(sz+1) + lgamma(m-sz) - lgamma(m+1))
	}
	vals := make([][]float64, m)
	for k := range vals {
		vals[k] = make([]float64, n)
		for c := 0; c < total; c++ {
			if c&(1<<k) != 0 {
				continue
			}
			w := weight[popcount(c)]
			with := out[c|1<<k]
			for r := 0; r < n; r++ {
				vals[k][r] += w * (float64(with[r]) - float64(out[c][r]))
			}
		}
	}
	return &Result{Attributions: spread(inputs, f, vals, n)}, nil
}

func lgamma(x int) float64 {
	v, _ := math.Lgamma(float64(x))
	return v
}

func popcount(c int) int {
	n := 0
	for ; c != 0; c &= c - 1 {
		n++
	}
	return n
}
