package metrics

import (
	"context"
	"math"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/internal/testmodels"
	"github.com/loupe-ml/loupe/tensor"
)

func TestLocalisation(t *testing.T) {
	a, _ := tensor.FromFloat32([]float32{1, 3, -2, 0, 0.5, 0.5, 2, 0}, 2, 4)
	mask, _ := tensor.FromFloat32([]float32{0, 1, 1, 0}, 1, 4)
	s, err := ShareInMask(a, mask)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(float64(s.F[0])-0.75) > 1e-6 || math.Abs(float64(s.F[1])-2.5/3) > 1e-6 {
		t.Errorf("shares %v, want [0.75 0.833]", s.F)
	}
	hits, _ := PointingGame(a, mask)
	if !hits[0] || !hits[1] {
		t.Errorf("pointing game %v, want both hits", hits)
	}
	if _, err := ShareInMask(a, tensor.New(3)); err == nil {
		t.Error("mask of the wrong shape: no error")
	}
}

// On a linear model, deleting features in order of input x gradient makes
// the output fall fastest: its deletion curve lies under the reverse
// order's, and insertion mirrors it.
func TestDeletionCurves(t *testing.T) {
	ctx := context.Background()
	nt := linearNet(t)
	x := []*tensor.Tensor{randn(5, 2, 6)}
	o := attr.Options{Target: attr.Class(1)}
	a, _ := (&attr.InputXGradient{Net: nt}).Attribute(ctx, x, o)
	rev := a.Attributions[0].Clone()
	for i := range rev.F {
		rev.F[i] = -rev.F[i]
	}
	del, err := DeletionCurves(ctx, nt, x, a.Attributions, o, 6, false)
	if err != nil {
		t.Fatal(err)
	}
	delRev, _ := DeletionCurves(ctx, nt, x, []*tensor.Tensor{rev}, o, 6, false)
	ins, _ := DeletionCurves(ctx, nt, x, a.Attributions, o, 6, true)
	fx, _ := targets(ctx, nt, x, o, 2, 1)
	for e := 0; e < 2; e++ {
		c := del[e]
		if math.Abs(c.Outputs[0]-float64(fx[e])) > 1e-5 {
			t.Errorf("deletion curve starts at %g, f(x) = %g", c.Outputs[0], fx[e])
		}
		if math.Abs(c.Outputs[6]-ins[e].Outputs[0]) > 1e-5 || math.Abs(ins[e].Outputs[6]-c.Outputs[0]) > 1e-5 {
			t.Errorf("deletion ends where insertion starts and the reverse: %v %v", c.Outputs, ins[e].Outputs)
		}
		if !(c.AUC < delRev[e].AUC) {
			t.Errorf("example %d: deletion AUC %g by attribution, %g in reverse order", e, c.AUC, delRev[e].AUC)
		}
		// For a linear model and a zero baseline, deleting a feature moves
		// the output by exactly its input x gradient attribution.
		attrs := append([]float32(nil), a.Attributions[0].F[e*6:(e+1)*6]...)
		sort.Slice(attrs, func(i, j int) bool { return attrs[i] > attrs[j] })
		want := float64(fx[e])
		for s := 1; s <= 6; s++ {
			want -= float64(attrs[s-1])
			if math.Abs(c.Outputs[s]-want) > 1e-5 {
				t.Errorf("example %d step %d: output %g, want f(x) minus the deleted attributions %g", e, s, c.Outputs[s], want)
			}
		}
	}
}

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
	m, err := engine.Load(testmodels.Path("cnn_s0.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	nt, _ := attr.NewNet(m)
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
