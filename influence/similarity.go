package influence

import (
	"context"
	"fmt"
	"math"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/tensor"
)

// SimilarityInfluence ranks the training examples by the similarity of
// their activations at each named layer to a test example's, Captum's
// captum.influence.SimilarityInfluence. Cost: one forward row per test and
// per source example (per layer).
type SimilarityInfluence struct {
	Net *attr.Net
	// Layers are module paths or tensor names; the results are keyed by
	// them.
	Layers []string
	// InfluenceSrcDataset holds the source (training) examples; labels are
	// not used.
	InfluenceSrcDataset Dataset
	// SimilarityMetric is "cosine" (default; rows scaled to unit L2 norm,
	// zero rows stay zero) or "euclidean" (L2 distance).
	SimilarityMetric string
	// SimilarityDirection is "max" (default: largest similarity first) or
	// "min" (smallest first, right for distances).
	SimilarityDirection string
	// BatchSize is how many source examples share a pass (default 1).
	BatchSize int
}

// Influence returns, per layer, the top_k source examples of each test
// example, best first (Captum's influence(inputs, top_k)).
func (s *SimilarityInfluence) Influence(ctx context.Context, inputs []*tensor.Tensor, topK int, o attr.Options) (map[string]*TopK, error) {
	if s.Net == nil || s.Net.Model == nil {
		return nil, fmt.Errorf("influence: SimilarityInfluence has no Net")
	}
	if len(s.Layers) == 0 {
		return nil, fmt.Errorf("influence: SimilarityInfluence has no layers")
	}
	if err := s.InfluenceSrcDataset.check("the source dataset", false); err != nil {
		return nil, err
	}
	metric := s.SimilarityMetric
	if metric == "" {
		metric = "cosine"
	}
	if metric != "cosine" && metric != "euclidean" {
		return nil, fmt.Errorf("influence: similarity metric %q: want cosine or euclidean", s.SimilarityMetric)
	}
	dir := s.SimilarityDirection
	if dir == "" {
		dir = "max"
	}
	if dir != "max" && dir != "min" {
		return nil, fmt.Errorf("influence: similarity direction %q: want max or min", s.SimilarityDirection)
	}
	nsrc := s.InfluenceSrcDataset.Len()
	if topK < 1 || topK > nsrc {
		return nil, fmt.Errorf("influence: top_k=%d outside 1..%d (source examples)", topK, nsrc)
	}
	out := map[string]*TopK{}
	for _, layer := range s.Layers {
		la := &attr.LayerActivation{Net: s.Net, Layer: layer}
		r, err := la.Attribute(ctx, inputs, o)
		if err != nil {
			return nil, fmt.Errorf("influence: activations at %s: %w", layer, err)
		}
		test := rows64(r.Attributions[0])
		var src [][]float64
		bs := max(s.BatchSize, 1)
		for lo := 0; lo < nsrc; lo += bs {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			b := s.InfluenceSrcDataset.rows(lo, min(lo+bs, nsrc))
			r, err := la.Attribute(ctx, b.Inputs, attr.Options{Additional: o.Additional})
			if err != nil {
				return nil, fmt.Errorf("influence: source activations at %s: %w", layer, err)
			}
			src = append(src, rows64(r.Attributions[0])...)
		}
		if metric == "cosine" {
			unit(test)
			unit(src)
		}
		sims := tensor.New(len(test), nsrc)
		for i, a := range test {
			for j, b := range src {
				var v float64
				if metric == "cosine" {
					for k := range a {
						v += a[k] * b[k]
					}
				} else {
					for k := range a {
						d := a[k] - b[k]
						v += d * d
					}
					v = math.Sqrt(v)
				}
				sims.F[i*nsrc+j] = float32(v)
			}
		}
		tk, err := KMostInfluential(sims, topK, dir == "max")
		if err != nil {
			return nil, err
		}
		out[layer] = tk
	}
	return out, nil
}

// rows64 flattens a batch into float64 rows.
func rows64(v *tensor.Tensor) [][]float64 {
	n := v.Shape[0]
	d := v.Len() / max(n, 1)
	out := make([][]float64, n)
	for i := range out {
		out[i] = make([]float64, d)
		for j := range out[i] {
			out[i][j] = v.Float64At(i*d + j)
		}
	}
	return out
}

// unit scales each row to unit L2 norm; zero rows stay zero.
func unit(rows [][]float64) {
	for _, r := range rows {
		s := 0.0
		for _, v := range r {
			s += v * v
		}
		if s == 0 {
			continue
		}
		s = math.Sqrt(s)
		for j := range r {
			r[j] /= s
		}
	}
}
