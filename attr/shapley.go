package attr

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/loupe-ml/loupe/tensor"
)

// features collects the feature ids shared across all inputs: for each id,
// the flat indices it covers in each input.
type features struct {
	ids   []int64
	cover [][][]int // cover[k][i]: indices of feature k in input i
}

func collectFeatures(inputs, masks []*tensor.Tensor) (*features, error) {
	full, ids, err := featureMasks(inputs, masks)
	if err != nil {
		return nil, err
	}
	pos := map[int64]int{}
	f := &features{}
	for i := range inputs {
		for _, id := range ids[i] {
			if _, ok := pos[id]; !ok {
				pos[id] = -1
				f.ids = append(f.ids, id)
			}
		}
	}
	slices.Sort(f.ids)
	for k, id := range f.ids {
		pos[id] = k
	}
	f.cover = make([][][]int, len(f.ids))
	for k := range f.cover {
		f.cover[k] = make([][]int, len(inputs))
	}
	for i, m := range full {
		for e, id := range m.I {
			k := pos[id]
			f.cover[k][i] = append(f.cover[k][i], e)
		}
	}
	return f, nil
}

// featureSetup checks the inputs and returns the batch size, the full
// baselines and the features shared across inputs.
func featureSetup(inputs []*tensor.Tensor, o Options, masks []*tensor.Tensor) (int, []*tensor.Tensor, *features, error) {
	n, err := batchOf(inputs)
	if err != nil {
		return 0, nil, nil, err
	}
	base, err := baselinesFor(o.Baselines, inputs)
	if err != nil {
		return 0, nil, nil, err
	}
	f, err := collectFeatures(inputs, masks)
	return n, base, f, err
}

// coalitionBatch builds copies of the inputs, one per coalition: elements of
// features in the coalition keep the input's value, the others take the
// baseline's. Copies are stacked block by block.
func coalitionBatch(inputs, base []*tensor.Tensor, f *features, coalitions [][]bool) []*tensor.Tensor {
	c := len(coalitions)
	out := make([]*tensor.Tensor, len(inputs))
	for i, b := range base {
		out[i] = repeat(b, c, false)
	}
	for j, on := range coalitions {
		for k, in := range on {
			if !in {
				continue
			}
			for i, x := range inputs {
				off := j * x.Len()
				for _, e := range f.cover[k][i] {
					switch x.DType {
					case tensor.Float32:
						out[i].F[off+e] = x.F[e]
					case tensor.Int64:
						out[i].I[off+e] = x.I[e]
					case tensor.Bool:
						out[i].B[off+e] = x.B[e]
					}
				}
			}
		}
	}
	return out
}

// spread writes each feature's value per example to every element it covers.
func spread(inputs []*tensor.Tensor, f *features, vals [][]float64, n int) []*tensor.Tensor {
	attrs := zerosLike(inputs, false)
	for k := range f.ids {
		for i, x := range inputs {
			row := x.Len() / n
			for _, e := range f.cover[k][i] {
				attrs[i].F[e] = float32(vals[k][e/row])
			}
		}
	}
	return attrs
}

// ShapleyValueSampling estimates Shapley values by sampling permutations of
// the features (Castro, Gómez and Tejada, "Polynomial calculation of the
// Shapley value based on sampling", 2009): for each permutation the
// features are switched from baseline to input one by one and each is
// credited with the change of the target output. For every permutation the
// attributions sum exactly to F(x) - F(baseline). Cost: 1 + NSamples*F
// forward rows per example, in batches of PerturbationsPerEval.
type ShapleyValueSampling struct {
	Model Model
	// FeatureMask groups elements into features; ids are shared across
	// inputs (nil: every element is a feature).
	FeatureMask []*tensor.Tensor
	// NSamples is the number of permutations; 0 means 25.
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
	n, base, f, err := featureSetup(inputs, o, s.FeatureMask)
	if err != nil {
		return nil, err
	}
	m := len(f.ids)
	var perms [][]int
	if s.Permutations != nil {
		pos := map[int64]int{}
		for k, id := range f.ids {
			pos[id] = k
		}
		for _, p := range s.Permutations {
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
	} else {
		k := s.NSamples
		if k == 0 {
			k = 25
		}
		rng := rand.New(rand.NewPCG(s.Seed, 0x737673))
		for j := 0; j < k; j++ {
			perms = append(perms, rng.Perm(m))
		}
	}
	for _, p := range perms {
		if len(p) != m {
			return nil, fmt.Errorf("attr: permutation of %d features, the masks have %d", len(p), m)
		}
	}
	per := perEval(s.PerturbationsPerEval, inputs, false)
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
	total := len(perms) * m
	done := 0
	for _, p := range perms {
		prev := prev0
		on := make([]bool, m)
		for j0 := 0; j0 < m; j0 += per {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			j1 := min(m, j0+per)
			coal := make([][]bool, 0, j1-j0)
			for j := j0; j < j1; j++ {
				on[p[j]] = true
				coal = append(coal, slices.Clone(on))
			}
			v, err := evalRows(ctx, s.Model, coalitionBatch(inputs, base, f, coal), o, n, len(coal))
			if err != nil {
				return nil, err
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
			vals[k][r] /= float64(len(perms))
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
	Model                Model
	FeatureMask          []*tensor.Tensor
	PerturbationsPerEval int
	// MaxFeatures bounds F; 0 means 12 (4096 coalitions).
	MaxFeatures int
}

// Attribute computes exact Shapley values for o.Target.
func (s *ShapleyValues) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	n, base, f, err := featureSetup(inputs, o, s.FeatureMask)
	if err != nil {
		return nil, err
	}
	m := len(f.ids)
	limit := s.MaxFeatures
	if limit == 0 {
		limit = 12
	}
	if m > limit {
		return nil, fmt.Errorf("attr: ShapleyValues over %d features needs 2^%d model evaluations per example; group features with a feature mask, use ShapleyValueSampling, or raise MaxFeatures (now %d)", m, m, limit)
	}
	per := perEval(s.PerturbationsPerEval, inputs, false)
	total := 1 << m
	out := make([][]float32, total) // per coalition, per example
	for c0 := 0; c0 < total; c0 += per {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c1 := min(total, c0+per)
		coal := make([][]bool, 0, c1-c0)
		for c := c0; c < c1; c++ {
			on := make([]bool, m)
			for k := range on {
				on[k] = c&(1<<k) != 0
			}
			coal = append(coal, on)
		}
		v, err := evalRows(ctx, s.Model, coalitionBatch(inputs, base, f, coal), o, n, len(coal))
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

// FeaturePermutation attributes to each feature the drop of the target
// output when the feature's values are shuffled across the examples of the
// batch (Breiman, "Random Forests", 2001; Fisher, Rudin and Dominici,
// 2019): f(x) - f(x with the feature permuted). The batch needs at least
// two examples; identity permutations are redrawn. Cost: 1 + F forward
// rows per example.
type FeaturePermutation struct {
	Model                Model
	FeatureMask          []*tensor.Tensor
	PerturbationsPerEval int
	Seed                 uint64
	// Permutations, when set, replaces the random draws: one batch
	// permutation per feature, inputs in order, ids ascending.
	Permutations [][]int
}

// Attribute computes permutation importances for o.Target.
func (fp *FeaturePermutation) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	n, err := batchOf(inputs)
	if err != nil {
		return nil, err
	}
	if n < 2 {
		return nil, fmt.Errorf("attr: FeaturePermutation needs a batch of at least 2 examples, got %d", n)
	}
	masks, ids, err := featureMasks(inputs, fp.FeatureMask)
	if err != nil {
		return nil, err
	}
	for i, m := range masks {
		if fp.FeatureMask != nil && fp.FeatureMask[i] != nil && fp.FeatureMask[i].Rank() == inputs[i].Rank() && fp.FeatureMask[i].Shape[0] != 1 {
			return nil, fmt.Errorf("attr: FeaturePermutation needs feature mask %d to have a first dimension of 1, got shape %v", i, m.Shape)
		}
	}
	f0, err := evalRows(ctx, fp.Model, inputs, o, n, 1)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(fp.Seed, 0x7065726d))
	type job struct {
		in   int
		idx  []int // row-relative indices of the feature
		perm []int
	}
	var jobs []job
	for i := range inputs {
		row := inputs[i].Len() / n
		for _, p := range groupPerturbations(i, masks[i], ids[i]) {
			var rel []int
			for _, e := range p.idx {
				if e < row {
					rel = append(rel, e)
				}
			}
			var perm []int
			if fp.Permutations != nil {
				if len(jobs) >= len(fp.Permutations) {
					return nil, fmt.Errorf("attr: %d recorded permutations for more features", len(fp.Permutations))
				}
				perm = fp.Permutations[len(jobs)]
				if len(perm) != n {
					return nil, fmt.Errorf("attr: recorded permutation %d has %d entries for a batch of %d", len(jobs), len(perm), n)
				}
			} else {
				for {
					perm = rng.Perm(n)
					if !isIdentity(perm) {
						break
					}
				}
			}
			jobs = append(jobs, job{in: i, idx: rel, perm: perm})
		}
	}
	attrs := zerosLike(inputs, false)
	per := perEval(fp.PerturbationsPerEval, inputs, false)
	for j0 := 0; j0 < len(jobs); j0 += per {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		j1 := min(len(jobs), j0+per)
		c := j1 - j0
		batch := make([]*tensor.Tensor, len(inputs))
		for i, x := range inputs {
			batch[i] = repeat(x, c, false)
		}
		for j := j0; j < j1; j++ {
			jb := jobs[j]
			x, dst := inputs[jb.in], batch[jb.in]
			row := x.Len() / n
			off := (j - j0) * x.Len()
			for r := 0; r < n; r++ {
				for _, e := range jb.idx {
					switch x.DType {
					case tensor.Float32:
						dst.F[off+r*row+e] = x.F[jb.perm[r]*row+e]
					case tensor.Int64:
						dst.I[off+r*row+e] = x.I[jb.perm[r]*row+e]
					case tensor.Bool:
						dst.B[off+r*row+e] = x.B[jb.perm[r]*row+e]
					}
				}
			}
		}
		v, err := evalRows(ctx, fp.Model, batch, o, n, c)
		if err != nil {
			return nil, err
		}
		for j := j0; j < j1; j++ {
			jb := jobs[j]
			row := inputs[jb.in].Len() / n
			for r := 0; r < n; r++ {
				d := f0[r] - v[(j-j0)*n+r]
				for _, e := range jb.idx {
					attrs[jb.in].F[r*row+e] = d
				}
			}
		}
		if o.Progress != nil {
			o.Progress(j1, len(jobs))
		}
	}
	return &Result{Attributions: attrs}, nil
}

func isIdentity(p []int) bool {
	for i, v := range p {
		if i != v {
			return false
		}
	}
	return true
}
