package metrics

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/tensor"
)

// edges is an explanation that ignores the model: the absolute horizontal
// gradient of the image.
type edges struct{}

func (edges) Attribute(ctx context.Context, in []*tensor.Tensor, o attr.Options) (*attr.Result, error) {
	x := in[0]
	a := tensor.New(x.Shape...)
	w := x.Shape[len(x.Shape)-1]
	for i := range a.F {
		if i%w+1 < w {
			a.F[i] = float32(math.Abs(float64(x.F[i+1] - x.F[i])))
		}
	}
	return &attr.Result{Attributions: []*tensor.Tensor{a}}, nil
}

// The randomization check tells Saliency on the trained demo model from an
// edge detector: Saliency changes as the weights are randomized, the edge
// detector does not.
func TestModelRandomization(t *testing.T) {
	ctx := context.Background()
	// The oracle's CNN (conv, batch norm, pool, twice, and a linear
	// layer) on a random image.
	nt := loadNet(t, "cnn_s0.onnx")
	x := tensor.New(1, 3, 32, 32)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range x.F {
		x.F[i] = float32(rng.NormFloat64())
	}
	o := attr.Options{Target: attr.Class(1)}
	sal, err := ModelRandomization(ctx, nt, func(n *attr.Net) attr.Method { return &attr.Saliency{Net: n} }, []*tensor.Tensor{x}, o, 1)
	if err != nil {
		t.Fatal(err)
	}
	edg, err := ModelRandomization(ctx, nt, func(*attr.Net) attr.Method { return edges{} }, []*tensor.Tensor{x}, o, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(sal) != 3 {
		t.Fatalf("%d randomization steps, want 3 (fc, conv2, conv1)", len(sal))
	}
	last := sal[len(sal)-1]
	if last.Spearman[0] > 0.6 || last.SSIM[0] > 0.6 {
		t.Errorf("Saliency after randomizing every layer: Spearman %.2f, SSIM %.2f; want a clear change", last.Spearman[0], last.SSIM[0])
	}
	for _, s := range edg {
		if s.Spearman[0] < 0.999 || s.SSIM[0] < 0.999 {
			t.Errorf("edge detector after randomizing %v: Spearman %.3f SSIM %.3f, want 1", s.Layers, s.Spearman[0], s.SSIM[0])
		}
	}
	for _, s := range sal {
		t.Logf("Saliency Spearman after randomizing %v: %.2f", s.Layers, s.Spearman[0])
	}
}

// The similarity measures on cases with known answers.
func TestSimilarityMeasures(t *testing.T) {
	a := []float64{0.1, 0.5, 0.2, 0.9, 0.4}
	lin, neg, mono := make([]float64, len(a)), make([]float64, len(a)), make([]float64, len(a))
	for i, v := range a {
		lin[i], neg[i], mono[i] = 2*v+1, -v, v*v*v
	}
	near := func(got, want float64) bool { return math.Abs(got-want) < 1e-12 }
	if !near(pearson(a, lin), 1) || !near(pearson(a, neg), -1) || !near(spearman(a, mono), 1) || !near(ssim(a, a), 1) {
		t.Errorf("pearson %g %g, spearman %g, ssim %g", pearson(a, lin), pearson(a, neg), spearman(a, mono), ssim(a, a))
	}
	const c1, c2 = 0.01 * 0.01, 0.03 * 0.03
	want := (2*0.25 + c1) * (-0.5 + c2) / ((0.5 + c1) * (0.5 + c2))
	if got := ssim([]float64{0, 1}, []float64{1, 0}); !near(got, want) {
		t.Errorf("ssim of opposite signals %g, want %g", got, want)
	}
}
