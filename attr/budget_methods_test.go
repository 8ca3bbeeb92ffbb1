package attr

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loupe-ml/loupe/tensor"
)

// budgetCase is a method run twice, with and without a small memory
// budget.
type budgetCase struct {
	name   string
	m      Method
	x      []*tensor.Tensor
	o      Options
	budget int64
}

// checkSplit runs tc's method without and with its budget and fails unless
// the budget gives more progress reports (model calls) and the same
// attributions.
func checkSplit(t *testing.T, tc budgetCase) {
	t.Helper()
	ctx := context.Background()
	full := tc.o
	var bigCalls, smallCalls int
	full.Progress = func(int, int) { bigCalls++ }
	want, err := tc.m.Attribute(ctx, tc.x, full)
	if err != nil {
		t.Fatalf("%s: %v", tc.name, err)
	}
	small := tc.o
	small.MemoryBudget = tc.budget
	small.Progress = func(int, int) { smallCalls++ }
	got, err := tc.m.Attribute(ctx, tc.x, small)
	if err != nil {
		t.Fatalf("%s with a budget of %d bytes: %v", tc.name, tc.budget, err)
	}
	if smallCalls <= bigCalls {
		t.Errorf("%s: %d progress reports with a budget of %d bytes, %d without: no split", tc.name, smallCalls, tc.budget, bigCalls)
	}
	if len(got.Attributions) != len(want.Attributions) {
		t.Fatalf("%s: %d attributions with a budget, %d without", tc.name, len(got.Attributions), len(want.Attributions))
	}
	for i := range want.Attributions {
		if !tensor.SameShape(got.Attributions[i].Shape, want.Attributions[i].Shape) {
			t.Fatalf("%s: attribution %d has shape %v with a budget, %v without", tc.name, i, got.Attributions[i].Shape, want.Attributions[i].Shape)
		}
		for e, w := range want.Attributions[i].F {
			if g := got.Attributions[i].F[e]; math.Abs(float64(g-w)) > 1e-5*math.Max(1, math.Abs(float64(w))) {
				t.Fatalf("%s attribution %d element %d: %g with a budget of %d bytes, %g without", tc.name, i, e, g, tc.budget, w)
			}
		}
	}
}

// checkRefusal fails unless the method refuses at once, before any call
// of the counted model, with a memory budget error that mentions every
// string of want.
func checkRefusal(t *testing.T, name string, m Method, x []*tensor.Tensor, o Options, calls *atomic.Int64, want ...string) {
	t.Helper()
	if calls != nil {
		calls.Store(0)
	}
	start := time.Now()
	_, err := m.Attribute(context.Background(), x, o)
	if !errors.Is(err, ErrMemoryBudget) {
		t.Errorf("%s: %v, want a memory budget error", name, err)
		return
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: %v, want it to mention %q", name, err, w)
		}
	}
	if calls != nil {
		if c := calls.Load(); c != 0 {
			t.Errorf("%s: %d model calls before the refusal", name, c)
		}
	}
	if d := time.Since(start); d > time.Minute { // a refusal comes before any long work
		t.Errorf("%s: refused after %v", name, d)
	}
}

// The perturbation methods split their perturbed copies to fit the
// budget, by incremental inference on a Net as by full passes on a Func,
// and give the same answers.
func TestBudgetSplitsPerturbationMethods(t *testing.T) {
	nt := net(t, "cnn_s0.onnx")
	x := []*tensor.Tensor{randn(3, 1, 2, 3, 32, 32)}
	o := Options{Target: Classes(1, 7)}
	var calls atomic.Int64
	const mb = 1 << 20
	win := [][]int{{3, 8, 8}}
	for _, tc := range []budgetCase{
		{"Occlusion", &Occlusion{Model: nt, SlidingWindowShapes: win, Strides: win}, x, o, mb},
		{"Occlusion(ppe=8)", &Occlusion{Model: nt, SlidingWindowShapes: win, Strides: [][]int{{3, 4, 4}}, PerturbationsPerEval: 8}, x, o, mb},
		{"Occlusion(Func)", &Occlusion{Model: countSum(&calls), SlidingWindowShapes: win, Strides: win}, x, Options{Target: Class(0)}, 400 << 10},
		{"FeatureAblation", &FeatureAblation{Model: nt, FeatureMask: []*tensor.Tensor{quadrants(32)}}, x, o, mb},
		{"FeatureAblation(Func)", &FeatureAblation{Model: countSum(&calls), FeatureMask: []*tensor.Tensor{quadrants(32)}}, x, Options{Target: Class(0)}, 150 << 10},
		{"FeaturePermutation", &FeaturePermutation{Model: nt, FeatureMask: []*tensor.Tensor{quadrants(32)}, Seed: 4}, x, o, mb},
		{"LayerFeatureAblation", &LayerFeatureAblation{Net: nt, Layer: "relu2"}, x, o, mb},
	} {
		checkSplit(t, tc)
	}
}

// The perturbation methods refuse at once what would not fit even one
// perturbed copy at a time, and say what to change.
func TestBudgetRefusesPerturbationMethods(t *testing.T) {
	var calls atomic.Int64
	model := countSum(&calls)
	img := []*tensor.Tensor{randn(7, 1, 1, 3, 224, 224)}
	o := Options{Target: Class(0), MemoryBudget: 2_800_000}
	win := [][]int{{3, 15, 15}}
	checkRefusal(t, "Occlusion", &Occlusion{Model: model, SlidingWindowShapes: win, Strides: win}, img, o, &calls, "Occlusion", "one perturbed copy", "MemoryBudget")
	// 44,100 windows of 675 elements: 238 MB of indices.
	checkRefusal(t, "Occlusion stride 1", &Occlusion{Model: model, SlidingWindowShapes: win}, img, Options{Target: Class(0), MemoryBudget: 100 << 20}, &calls, "strides")
	checkRefusal(t, "FeatureAblation", &FeatureAblation{Model: model}, img, o, &calls, "FeatureAblation", "one perturbed copy", "Options.MemoryBudget")
	// 150,528 features of one element: 2.4 MB of indices and results.
	checkRefusal(t, "FeatureAblation per element", &FeatureAblation{Model: model}, img, Options{Target: Class(0), MemoryBudget: 2 << 20}, &calls, "feature_mask")
	checkRefusal(t, "FeaturePermutation", &FeaturePermutation{Model: model, FeatureMask: []*tensor.Tensor{quadrants(224)}}, []*tensor.Tensor{randn(7, 1, 2, 3, 224, 224)}, Options{Target: Class(0), MemoryBudget: 2_800_000}, &calls, "FeaturePermutation", "one perturbed copy of a batch of 2")
}

// DeepLiftShap, LayerDeepLiftShap and LayerGradientShap split their expanded rows (pairs of
// an example and a baseline; draws) to fit the budget, with the same
// answers and deltas.
func TestBudgetSplitsShapMethods(t *testing.T) {
	nt := net(t, "cnn_s0.onnx")
	x := []*tensor.Tensor{randn(3, 1, 2, 3, 32, 32)}
	o := Options{Target: Classes(1, 7), Baselines: []*tensor.Tensor{randn(4, 1, 3, 3, 32, 32)}}
	od := o
	od.Delta = true
	const mb = 1 << 20
	for _, tc := range []budgetCase{
		{"DeepLiftShap", &DeepLiftShap{Net: nt}, x, o, 2 * mb},
		{"DeepLiftShap(delta)", &DeepLiftShap{Net: nt, Strict: true}, x, od, 2 * mb},
		{"LayerDeepLiftShap", &LayerDeepLiftShap{Net: nt, Layer: "relu2"}, x, o, 2 * mb},
		{"LayerDeepLiftShap(delta)", &LayerDeepLiftShap{Net: nt, Layer: "conv1", Strict: true}, x, od, 2 * mb},
		{"LayerGradientShap", &LayerGradientShap{Net: nt, Layer: "relu2", NSamples: 12, Stdevs: []float64{0.1}, Seed: 3}, x, o, 2 * mb},
		{"LayerGradientShap(local, delta)", &LayerGradientShap{Net: nt, Layer: "conv1", NSamples: 5, Local: true, Seed: 3}, x, od, 2 * mb},
	} {
		checkSplit(t, tc)
		if tc.o.Delta {
			small := tc.o
			small.MemoryBudget = tc.budget
			a, errA := tc.m.Attribute(context.Background(), tc.x, tc.o)
			b, errB := tc.m.Attribute(context.Background(), tc.x, small)
			if errA != nil || errB != nil || a.Delta == nil || b.Delta == nil || a.Delta.Len() != b.Delta.Len() {
				t.Fatalf("%s: deltas %v, %v", tc.name, errA, errB)
			}
			for e, w := range a.Delta.F {
				if g := b.Delta.F[e]; math.Abs(float64(g-w)) > 1e-5*math.Max(1, math.Abs(float64(w))) {
					t.Fatalf("%s delta %d: %g with a budget, %g without", tc.name, e, g, w)
				}
			}
		}
	}
}

// DeepLiftShap and LayerGradientShap refuse at once what would not fit
// one pair or draw at a time.
func TestBudgetRefusesShapMethods(t *testing.T) {
	nt := net(t, "cnn_s0.onnx")
	x := []*tensor.Tensor{randn(3, 1, 4, 3, 32, 32)}
	o := Options{Target: Class(0), MemoryBudget: 1 << 18, Baselines: []*tensor.Tensor{randn(4, 1, 3, 3, 32, 32)}}
	checkRefusal(t, "DeepLiftShap", &DeepLiftShap{Net: nt}, x, o, nil, "DeepLiftShap", "one pair", "Options.MemoryBudget")
	checkRefusal(t, "LayerDeepLiftShap", &LayerDeepLiftShap{Net: nt, Layer: "relu2"}, x, o, nil, "LayerDeepLiftShap", "one pair", "Options.MemoryBudget")
	ol := o
	ol.MemoryBudget = 1 << 20
	checkRefusal(t, "LayerGradientShap", &LayerGradientShap{Net: nt, Layer: "relu2"}, x, ol, nil, "LayerGradientShap", "one draw", "Options.MemoryBudget")
	// The attributions alone: 4 images of 224x224.
	big := []*tensor.Tensor{randn(3, 1, 4, 3, 224, 224)}
	ob := Options{Target: Class(0), MemoryBudget: 1 << 20, Baselines: []*tensor.Tensor{randn(4, 1, 2, 3, 224, 224)}}
	checkRefusal(t, "DeepLiftShap attributions", &DeepLiftShap{Net: nt}, big, ob, nil, "fewer examples")
}

// ScoreCAM and AblationCAM split their masked and ablated copies to fit
// the budget, with the same maps, and refuse what would not fit one copy
// at a time before making any.
func TestBudgetCAMs(t *testing.T) {
	nt := net(t, "cnn_s0.onnx")
	x := []*tensor.Tensor{randn(3, 1, 2, 3, 32, 32)}
	o := Options{Target: Classes(1, 7)}
	layers := []string{"relu2"}
	for _, tc := range []budgetCase{
		{"ScoreCAM", &ScoreCAM{Net: nt, Layers: layers}, x, o, 1 << 20},
		{"AblationCAM", &AblationCAM{Net: nt, Layers: layers}, x, o, 1 << 20},
		{"AblationCAM(ratio)", &AblationCAM{Net: nt, Layers: layers, RatioChannelsToAblate: 0.3}, x, o, 1 << 20},
	} {
		checkSplit(t, tc)
	}
	o.MemoryBudget = 100 << 10
	var rows int
	o.Progress = func(done, total int) { rows = done }
	checkRefusal(t, "ScoreCAM", &ScoreCAM{Net: nt, Layers: layers}, x, o, nil, "ScoreCAM", "one modified copy", "Options.MemoryBudget")
	checkRefusal(t, "AblationCAM", &AblationCAM{Net: nt, Layers: layers}, x, o, nil, "AblationCAM", "one modified copy")
	if rows != 0 {
		t.Errorf("%d rows reported before the refusal", rows)
	}
}
