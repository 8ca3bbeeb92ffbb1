package metrics

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

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
// on what the model learned. The layers are the Conv, ConvTranspose, Gemm
// and MatMul nodes whose weight (second input) is an initializer; each
// weight in turn is replaced, through the net's injections, by Gaussian
// values with its own standard deviation (biases are kept). explain builds
// the method on a net. Cost: one explanation of the batch per layer, plus
// one.
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
	layers := weightedLayers(g)
	rng := rand.New(rand.NewPCG(seed, 0x72616e64))
	inject := map[string]*tensor.Tensor{}
	var out []Randomization
	var done []string
	for i := len(layers) - 1; i >= 0; i-- {
		node := layers[i]
		inject[node.Inputs[1]] = randomLike(rng, g.Initializers[node.Inputs[1]])
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

// weightedLayers returns the Conv, ConvTranspose, Gemm and MatMul nodes of
// g whose weight (second input) is an initializer, in graph order.
func weightedLayers(g *graph.Graph) []*graph.Node {
	var layers []*graph.Node
	for _, node := range g.Nodes {
		if len(node.Inputs) > 1 && (node.OpType == "Conv" || node.OpType == "Gemm" || node.OpType == "MatMul" || node.OpType == "ConvTranspose") {
			if _, ok := g.Initializers[node.Inputs[1]]; ok {
				layers = append(layers, node)
			}
		}
	}
	return layers
}

// randomLike returns Gaussian values of w's shape and standard deviation
// (at least 1e-6), centered on zero.
func randomLike(rng *rand.Rand, w *tensor.Tensor) *tensor.Tensor {
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
	return rw
}

// absRow returns the absolute attributions of example r (of n), all inputs
// in a row.
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

// ranks returns the rank of each value from 0 up, ties given their mean
// rank.
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

// pearson is the correlation coefficient of two signals of one length; a
// constant signal correlates 1 with another constant one, 0 with the rest.
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

// normalize scales nonnegative values by their largest (all zero when
// that is 0).
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
