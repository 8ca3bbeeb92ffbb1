package metrics

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// ShareInMask returns, per example, the share of the positive attribution
// that falls inside a mask (a bool or 0/1 tensor that broadcasts to the
// attribution): how well an explanation localises a known object.
func ShareInMask(a, mask *tensor.Tensor) (*tensor.Tensor, error) {
	n, row, in, err := maskRows(a, mask)
	if err != nil {
		return nil, err
	}
	out := tensor.New(n)
	for r := 0; r < n; r++ {
		var inside, all float64
		for e := 0; e < row; e++ {
			v := a.Float64At(r*row + e)
			if v > 0 {
				all += v
				if in(r*row + e) {
					inside += v
				}
			}
		}
		if all > 0 {
			out.F[r] = float32(inside / all)
		}
	}
	return out, nil
}

// PointingGame reports, per example, whether the element with the largest
// attribution lies inside the mask (Zhang et al., "Top-down Neural
// Attention by Excitation Backprop", ECCV 2016).
func PointingGame(a, mask *tensor.Tensor) ([]bool, error) {
	n, row, in, err := maskRows(a, mask)
	if err != nil {
		return nil, err
	}
	hits := make([]bool, n)
	for r := 0; r < n; r++ {
		best := r * row
		for e := r * row; e < (r+1)*row; e++ {
			if a.Float64At(e) > a.Float64At(best) {
				best = e
			}
		}
		hits[r] = in(best)
	}
	return hits, nil
}

func maskRows(a, mask *tensor.Tensor) (int, int, func(int) bool, error) {
	if a == nil || a.Rank() == 0 {
		return 0, 0, nil, fmt.Errorf("metrics: attribution needs a batch dimension")
	}
	bs, err := tensor.BroadcastShape(mask.Shape, a.Shape)
	if err != nil || !tensor.SameShape(bs, a.Shape) {
		return 0, 0, nil, fmt.Errorf("metrics: mask of shape %v does not broadcast to the attribution's %v", mask.Shape, a.Shape)
	}
	full := make([]bool, a.Len())
	st := tensor.BroadcastStrides(mask.Shape, a.Shape)
	idx := make([]int, a.Rank())
	for o := range full {
		j := 0
		for d, v := range idx {
			j += v * st[d]
		}
		full[o] = mask.Float64At(j) != 0
		for d := len(idx) - 1; d >= 0; d-- {
			idx[d]++
			if idx[d] < a.Shape[d] {
				break
			}
			idx[d] = 0
		}
	}
	n := a.Shape[0]
	return n, a.Len() / n, func(i int) bool { return full[i] }, nil
}

// Curve is a deletion or insertion curve of one example: the target output
// after removing (or adding) the first Fractions[k] of the features in
// order of attribution, and the area under it.
type Curve struct {
	Fractions []float64
	Outputs   []float64
	AUC       float64 // trapezoid area over fraction in [0, 1]
}

// DeletionCurves removes features (elements) from the inputs in decreasing
// order of attribution, replacing them by the baseline, and records the
// target output after each of steps equal chunks (Petsiuk, Das and Saenko,
// "RISE", BMVC 2018): a faithful explanation makes the output fall fast
// (small area). With insertion, features are added to the baseline in the
// same order instead, and a faithful explanation makes it rise fast.
// Cost: steps+1 forward rows per example, in one batch per example.
func DeletionCurves(ctx context.Context, m attr.Model, inputs, attributions []*tensor.Tensor, o attr.Options, steps int, insertion bool) ([]Curve, error) {
	n, err := batchOf(inputs)
	if err != nil {
		return nil, err
	}
	if steps < 1 {
		return nil, fmt.Errorf("metrics: steps must be positive")
	}
	if len(attributions) != len(inputs) {
		return nil, fmt.Errorf("metrics: %d attributions for %d inputs", len(attributions), len(inputs))
	}
	base := make([]*tensor.Tensor, len(inputs))
	for i, x := range inputs {
		base[i] = tensor.New(x.Shape...)
		if o.Baselines != nil && o.Baselines[i] != nil {
			b := o.Baselines[i].AsFloat32()
			for e := range base[i].F {
				base[i].F[e] = b.F[e%b.Len()]
			}
		}
	}
	curves := make([]Curve, n)
	for r := 0; r < n; r++ {
		// Features of this example, all inputs, by decreasing attribution.
		type feat struct {
			in, e int
			v     float32
		}
		var fs []feat
		for i, a := range attributions {
			row := a.Len() / n
			for e := 0; e < row; e++ {
				fs = append(fs, feat{i, r*row + e, a.F[r*row+e]})
			}
		}
		sort.SliceStable(fs, func(p, q int) bool { return fs[p].v > fs[q].v })
		batch := make([]*tensor.Tensor, len(inputs))
		for i, x := range inputs {
			row := x.Len() / n
			batch[i] = tensor.New(append([]int{steps + 1}, x.Shape[1:]...)...)
			for s := 0; s <= steps; s++ {
				src := x.AsFloat32()
				if insertion {
					src = base[i]
				}
				copy(batch[i].F[s*row:(s+1)*row], src.F[r*row:(r+1)*row])
			}
		}
		c := Curve{Fractions: make([]float64, steps+1)}
		for s := 0; s <= steps; s++ {
			k := s * len(fs) / steps
			c.Fractions[s] = float64(s) / float64(steps)
			for _, f := range fs[:k] {
				row := inputs[f.in].Len() / n
				e := f.e - r*row
				v := base[f.in].F[f.e]
				if insertion {
					v = inputs[f.in].AsFloat32().F[f.e]
				}
				batch[f.in].F[s*row+e] = v
			}
		}
		ro := o
		ro.Target = attr.TargetRows(o.Target, r, r+1, steps+1)
		ro.Additional = extraRows(o.Additional, n, r, r+1, steps+1)
		v, err := targets(ctx, m, batch, ro, 1, steps+1)
		if err != nil {
			return nil, err
		}
		for _, x := range v {
			c.Outputs = append(c.Outputs, float64(x))
		}
		for s := 1; s <= steps; s++ {
			c.AUC += (c.Outputs[s] + c.Outputs[s-1]) / 2 / float64(steps)
		}
		curves[r] = c
	}
	return curves, nil
}

// Randomization is one step of the model randomization check: the
// explanation after the weights of Layers (the last Layers, from the
// output down) were replaced by random values.
type Randomization struct {
	Layers []string // nodes randomized so far, output first
	// Spearman is the rank correlation of the absolute attributions with
	// the original explanation's, per example.
	Spearman []float64
	// SSIM is the structural similarity of the normalized absolute
	// attributions, per example.
	SSIM []float64
}

// ModelRandomization is the sanity check of Adebayo et al., "Sanity Checks
// for Saliency Maps", NeurIPS 2018: it randomizes the model's weights layer
// by layer from the output down (cascading) and measures how much the
// explanation changes. An explanation that stays the same does not depend
// on what the model learned. explain builds the method on a net (its
// weights injected). Cost: one explanation per layer with weights, plus one.
func ModelRandomization(ctx context.Context, nt *attr.Net, explain func(*attr.Net) attr.Method, inputs []*tensor.Tensor, o attr.Options, seed uint64) ([]Randomization, error) {
	n, err := batchOf(inputs)
	if err != nil {
		return nil, err
	}
	orig, err := explain(nt).Attribute(ctx, inputs, o)
	if err != nil {
		return nil, err
	}
	g := nt.Model.Graph()
	var layers []*graph.Node
	for _, node := range g.Nodes {
		if len(node.Inputs) > 1 && (node.OpType == "Conv" || node.OpType == "Gemm" || node.OpType == "MatMul" || node.OpType == "ConvTranspose") {
			if _, ok := g.Initializers[node.Inputs[1]]; ok {
				layers = append(layers, node)
			}
		}
	}
	rng := rand.New(rand.NewPCG(seed, 0x72616e64))
	inject := map[string]*tensor.Tensor{}
	var out []Randomization
	var done []string
	for i := len(layers) - 1; i >= 0; i-- {
		node := layers[i]
		w := g.Initializers[node.Inputs[1]]
		// Gaussian weights with the layer's own standard deviation.
		var s, q float64
		for _, v := range w.F {
			s += float64(v)
			q += float64(v) * float64(v)
		}
		sd := math.Sqrt(math.Max(q/float64(w.Len())-math.Pow(s/float64(w.Len()), 2), 1e-12))
		rw := tensor.New(w.Shape...)
		for e := range rw.F {
			rw.F[e] = float32(rng.NormFloat64() * sd)
		}
		inject[node.Inputs[1]] = rw
		done = append(done, node.Name)
		rnet := *nt
		rnet.Inject = map[string]*tensor.Tensor{}
		for k, v := range inject {
			rnet.Inject[k] = v
		}
		r, err := explain(&rnet).Attribute(ctx, inputs, o)
		if err != nil {
			return nil, fmt.Errorf("metrics: explanation after randomizing %s: %w", node.Name, err)
		}
		step := Randomization{Layers: append([]string(nil), done...)}
		for e := 0; e < n; e++ {
			a, b := absRow(orig.Attributions, e, n), absRow(r.Attributions, e, n)
			step.Spearman = append(step.Spearman, spearman(a, b))
			step.SSIM = append(step.SSIM, ssim(normalize(a), normalize(b)))
		}
		out = append(out, step)
	}
	return out, nil
}

func absRow(ts []*tensor.Tensor, r, n int) []float64 {
	var v []float64
	for _, t := range ts {
		row := t.Len() / n
		for _, x := range t.F[r*row : (r+1)*row] {
			v = append(v, math.Abs(float64(x)))
		}
	}
	return v
}

func ranks(v []float64) []float64 {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return v[idx[a]] < v[idx[b]] })
	r := make([]float64, len(v))
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && v[idx[j+1]] == v[idx[i]] {
			j++
		}
		for k := i; k <= j; k++ {
			r[idx[k]] = float64(i+j) / 2
		}
		i = j + 1
	}
	return r
}

// spearman is the rank correlation (Pearson correlation of the ranks,
// ties averaged).
func spearman(a, b []float64) float64 { return pearson(ranks(a), ranks(b)) }

func pearson(a, b []float64) float64 {
	_, _, va, vb, cov := moments(a, b)
	if va == 0 || vb == 0 {
		if va == vb {
			return 1
		}
		return 0
	}
	return cov / math.Sqrt(va*vb)
}

// moments returns the means, variances and covariance of two signals of
// one length (population: divided by the length).
func moments(a, b []float64) (ma, mb, va, vb, cov float64) {
	n := float64(len(a))
	for i := range a {
		ma += a[i]
		mb += b[i]
	}
	ma /= n
	mb /= n
	for i := range a {
		va += (a[i] - ma) * (a[i] - ma)
		vb += (b[i] - mb) * (b[i] - mb)
		cov += (a[i] - ma) * (b[i] - mb)
	}
	return ma, mb, va / n, vb / n, cov / n
}

func normalize(v []float64) []float64 {
	m := 0.0
	for _, x := range v {
		m = math.Max(m, x)
	}
	out := make([]float64, len(v))
	for i, x := range v {
		if m > 0 {
			out[i] = x / m
		}
	}
	return out
}

// ssim is the structural similarity of two signals in [0, 1], computed
// globally (one window), with the usual constants.
func ssim(a, b []float64) float64 {
	const c1, c2 = 0.01 * 0.01, 0.03 * 0.03
	ma, mb, va, vb, cov := moments(a, b)
	return (2*ma*mb + c1) * (2*cov + c2) / ((ma*ma + mb*mb + c1) * (va + vb + c2))
}

// CSV returns the curve as comma-separated "fraction,output" lines with a
// header.
func (c Curve) CSV() string {
	var b strings.Builder
	b.WriteString("fraction,output\n")
	for i := range c.Fractions {
		fmt.Fprintf(&b, "%g,%g\n", c.Fractions[i], c.Outputs[i])
	}
	return b.String()
}
