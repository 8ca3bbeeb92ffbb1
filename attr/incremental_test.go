package attr

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/internal/testmodels"
	"github.com/loupe-ml/loupe/tensor"
)

// plain hides a Net behind a Func, so that perturbation methods run full
// forward passes of every copy (no incremental inference).
func plain(nt *Net) Func { return nt.Eval }

func loadTestNet(t testing.TB, name string) *Net {
	t.Helper()
	m, err := engine.Load(filepath.Join(modelDir, name))
	if err != nil {
		t.Fatal(err)
	}
	nt, err := NewNet(m)
	if err != nil {
		t.Fatal(err)
	}
	return nt
}

// TestIncrementalPerturbations checks that Occlusion, FeatureAblation and
// FeaturePermutation on a Net (incremental inference) give the answers of full passes.
func TestIncrementalPerturbations(t *testing.T) {
	ctx := context.Background()
	cnn := loadTestNet(t, "cnn_s0.onnx")
	mini := loadTestNet(t, "resnet_mini_s0.onnx")
	grid := tensor.NewInt(1, 1, 32, 32)
	for i := range grid.I {
		y, x := i/32, i%32
		grid.I[i] = int64((y/4)*8 + x/4)
	}
	x32 := randn(3, 1, 2, 3, 32, 32)
	// One feature per element of an 8x8 patch, one for all the rest (too
	// large a box: a full pass).
	patch := tensor.NewInt(1, 3, 32, 32)
	for i := range patch.I {
		c, y, x := i/1024, i/32%32, i%32
		if y >= 10 && y < 18 && x >= 20 && x < 28 {
			patch.I[i] = int64(1 + c*64 + (y-10)*8 + x - 20)
		}
	}
	x224 := randn(4, 1, 1, 3, 224, 224)
	for _, tc := range []struct {
		name string
		nt   *Net
		x    *tensor.Tensor
		m    func(Model) Method
		o    Options
	}{
		{"occlusion_cnn", cnn, x32, func(m Model) Method {
			return &Occlusion{Model: m, SlidingWindowShapes: [][]int{{3, 5, 5}}, Strides: [][]int{{3, 3, 3}}, PerturbationsPerEval: 7}
		}, Options{Target: Class(1)}},
		{"occlusion_cnn_workers", cnn, x32, func(m Model) Method {
			return &Occlusion{Model: m, SlidingWindowShapes: [][]int{{3, 4, 4}}, Strides: [][]int{{3, 4, 4}}, PerturbationsPerEval: 5}
		}, Options{Target: Class(3), Workers: 2}},
		{"occlusion_cnn_baseline", cnn, x32, func(m Model) Method {
			return &Occlusion{Model: m, SlidingWindowShapes: [][]int{{1, 6, 4}}, Strides: [][]int{{1, 5, 4}}}
		}, Options{Target: Class(0), Baselines: []*tensor.Tensor{tensor.Scalar(0.5)}}},
		{"ablation_cnn_grid", cnn, x32, func(m Model) Method {
			return &FeatureAblation{Model: m, FeatureMask: []*tensor.Tensor{grid}, PerturbationsPerEval: 16}
		}, Options{Target: Class(2)}},
		{"ablation_cnn_elements", cnn, x32, func(m Model) Method {
			return &FeatureAblation{Model: m, FeatureMask: []*tensor.Tensor{patch}, PerturbationsPerEval: 64}
		}, Options{Target: Class(2), Baselines: []*tensor.Tensor{randn(5, 1, 1, 3, 32, 32)}}},
		{"permutation_cnn_grid", cnn, x32, func(m Model) Method {
			return &FeaturePermutation{Model: m, FeatureMask: []*tensor.Tensor{grid}, Seed: 3, PerturbationsPerEval: 16}
		}, Options{Target: Class(1)}},
		{"occlusion_resnet_mini", mini, x224, func(m Model) Method {
			return &Occlusion{Model: m, SlidingWindowShapes: [][]int{{3, 45, 45}}, Strides: [][]int{{3, 45, 45}}, PerturbationsPerEval: 8}
		}, Options{Target: Class(0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The Net takes the incremental path.
			inc, err := newIncremental(ctx, tc.nt, []*tensor.Tensor{tc.x}, tc.o, tc.x.Shape[0])
			if err != nil || inc == nil {
				t.Fatalf("no incremental inference: %v", err)
			}
			win := perturbation{in: 0}
			for r := range tc.x.Shape[0] {
				win.idx = append(win.idx, r*tc.x.Len()/tc.x.Shape[0]+5)
			}
			if ps := inc.patches([]*tensor.Tensor{tc.x}, []perturbation{win}, func(int, int) float32 { return 0 }); len(ps) != 1 {
				t.Fatalf("got %d patches for one perturbation", len(ps))
			}
			got, err := tc.m(tc.nt).Attribute(ctx, []*tensor.Tensor{tc.x}, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			want, err := tc.m(plain(tc.nt)).Attribute(ctx, []*tensor.Tensor{tc.x}, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			a, b := got.Attributions[0], want.Attributions[0]
			scale := 0.0
			for _, v := range b.F {
				scale = max(scale, float64(abs32(v)))
			}
			if scale == 0 {
				t.Fatal("all attributions zero")
			}
			if d := tensor.MaxAbsDiff(a.F, b.F); d > 1e-4*max(scale, 1) {
				t.Errorf("incremental differs from full passes by %g (largest attribution %g)", d, scale)
			}
		})
	}
}

func abs32(v float32) float32 {
	if v < 0 {
		return -v
	}
	return v
}

// TestIncrementalSpeedResNet18 times the occlusion tutorial on resnet18
// with and without incremental inference, back to back, and logs the
// ratio. It runs only when LOUPE_MEASURE is set (it takes minutes).
func TestIncrementalSpeedResNet18(t *testing.T) {
	if os.Getenv("LOUPE_MEASURE") == "" {
		t.Skip("set LOUPE_MEASURE=1 to measure")
	}
	p := testmodels.ResNet18()
	if p == "" {
		t.Skip("resnet18 not found")
	}
	m, err := engine.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	nt, _ := NewNet(m)
	x := []*tensor.Tensor{randn(1, 1, 1, 3, 224, 224)}
	o := Options{Target: Class(0)}
	ctx := context.Background()
	for _, ppe := range []int{16, 0} {
		oc := func(m Model) *Occlusion {
			return &Occlusion{Model: m, SlidingWindowShapes: [][]int{{3, 15, 15}}, Strides: [][]int{{3, 8, 8}}, PerturbationsPerEval: ppe}
		}
		var ti, tf time.Duration
		var ri, rf *Result
		for rep := 0; rep < 2; rep++ {
			t0 := time.Now()
			r, err := oc(nt).Attribute(ctx, x, o)
			if err != nil {
				t.Fatal(err)
			}
			ti += time.Since(t0)
			ri = r
			t0 = time.Now()
			r, err = oc(plain(nt)).Attribute(ctx, x, o)
			if err != nil {
				t.Fatal(err)
			}
			tf += time.Since(t0)
			rf = r
		}
		d := tensor.MaxAbsDiff(ri.Attributions[0].F, rf.Attributions[0].F)
		t.Logf("ppe %d: incremental %v, full %v, ratio %.3f, max difference %g", ppe, ti/2, tf/2, float64(ti)/float64(tf), d)
	}
}

// TestIncrementalLayerAblation checks ablation of a layer's elements
// (LayerFeatureAblation's model) through incremental inference against
// full passes.
func TestIncrementalLayerAblation(t *testing.T) {
	ctx := context.Background()
	nt := loadTestNet(t, "cnn_s0.onnx")
	x := []*tensor.Tensor{randn(6, 1, 2, 3, 32, 32)}
	o := Options{Target: Class(1)}
	n, name, v, err := nt.layerActivation(ctx, x, o, "/conv1/Conv_output_0", false)
	if err != nil {
		t.Fatal(err)
	}
	lm := &layerModel{nt: nt, layer: name, inputs: x, n: n}
	if inc, err := newIncremental(ctx, lm, []*tensor.Tensor{v}, o, n); err != nil || inc == nil {
		t.Fatalf("no incremental inference for the layer: %v", err)
	}
	// One feature per 2x2 cell of the layer's plane, all channels.
	shape := v.Shape
	mask := tensor.NewInt(1, 1, shape[2], shape[3])
	for i := range mask.I {
		mask.I[i] = int64((i/shape[3])/2*shape[3] + (i%shape[3])/2)
	}
	fa := func(m Model) []float32 {
		r, err := (&FeatureAblation{Model: m, FeatureMask: []*tensor.Tensor{mask}, PerturbationsPerEval: 32}).Attribute(ctx, []*tensor.Tensor{v}, o)
		if err != nil {
			t.Fatal(err)
		}
		return r.Attributions[0].F
	}
	got, want := fa(lm), fa(Func(lm.Eval))
	if tensor.MaxAbsDiff(want, make([]float32, len(want))) == 0 {
		t.Fatal("all attributions zero")
	}
	if d := tensor.MaxAbsDiff(got, want); d > 1e-4 {
		t.Errorf("incremental differs from full passes by %g", d)
	}
}

// TestIncrementalSpeedCNN times FeatureAblation per element and
// ShapleyValueSampling-like grids on the small CNN (BenchmarkCNN's
// workloads) with and without incremental inference, back to back. It runs
// only when LOUPE_MEASURE is set.
func TestIncrementalSpeedCNN(t *testing.T) {
	if os.Getenv("LOUPE_MEASURE") == "" {
		t.Skip("set LOUPE_MEASURE=1 to measure")
	}
	nt := loadTestNet(t, "cnn_s0.onnx")
	x := []*tensor.Tensor{randn(1, 1, 1, 3, 32, 32)}
	o := Options{Target: Class(0)}
	ctx := context.Background()
	for _, ppe := range []int{0, 64} {
		var ti, tf time.Duration
		for rep := 0; rep < 3; rep++ {
			t0 := time.Now()
			if _, err := (&FeatureAblation{Model: nt, PerturbationsPerEval: ppe}).Attribute(ctx, x, o); err != nil {
				t.Fatal(err)
			}
			ti += time.Since(t0)
			t0 = time.Now()
			if _, err := (&FeatureAblation{Model: plain(nt), PerturbationsPerEval: ppe}).Attribute(ctx, x, o); err != nil {
				t.Fatal(err)
			}
			tf += time.Since(t0)
		}
		t.Logf("featureablation_per_element ppe %d: incremental %v, full %v, ratio %.3f", ppe, ti/3, tf/3, float64(ti)/float64(tf))
	}
}
