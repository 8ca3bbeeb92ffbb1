package metrics

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/tensor"
)

// A small memory budget splits the perturbed rows of Infidelity and
// SensitivityMax into more chunks and changes nothing else.
func TestBudgetSplitsMetrics(t *testing.T) {
	ctx := context.Background()
	nt := loadNet(t, "cnn_s0.onnx")
	x := []*tensor.Tensor{randn(3, 4, 3, 32, 32)}
	o := attr.Options{Target: attr.Classes(1, 7, 2, 0)}
	sal := &attr.Saliency{Net: nt}
	ex, err := sal.Attribute(ctx, x, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		budget int64
		run    func(o attr.Options, mo Options) (*tensor.Tensor, error)
	}{
		{"Infidelity", 2 << 20, func(o attr.Options, mo Options) (*tensor.Tensor, error) {
			return Infidelity(ctx, nt, GaussianNoise(0.1), x, ex.Attributions, o, true, mo)
		}},
		{"SensitivityMax", 1 << 20, func(o attr.Options, mo Options) (*tensor.Tensor, error) {
			return SensitivityMax(ctx, sal, UniformBall(0.02), x, o, mo)
		}},
	} {
		var big, small int
		want, err := tc.run(o, Options{NPerturbSamples: 6, Seed: 1, Progress: func(int, int) { big++ }})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		ob := o
		ob.MemoryBudget = tc.budget
		got, err := tc.run(ob, Options{NPerturbSamples: 6, Seed: 1, Progress: func(int, int) { small++ }})
		if err != nil {
			t.Fatalf("%s with a budget of %d bytes: %v", tc.name, tc.budget, err)
		}
		if small <= big {
			t.Errorf("%s: %d chunks with a budget of %d bytes, %d without: no split", tc.name, small, tc.budget, big)
		}
		for e, w := range want.F {
			if g := got.F[e]; g != w {
				t.Errorf("%s example %d: %g with a budget, %g without", tc.name, e, g, w)
			}
		}
	}
}

// What would not fit one example's perturbations at a time is refused
// before any model call, naming n_perturb_samples.
func TestBudgetRefusesMetrics(t *testing.T) {
	ctx := context.Background()
	var calls atomic.Int64
	model := attr.Func(func(_ context.Context, in []*tensor.Tensor) (*tensor.Tensor, error) {
		calls.Add(1)
		return tensor.New(in[0].Shape[0], 1), nil
	})
	x := []*tensor.Tensor{randn(3, 2, 3, 224, 224)}
	o := attr.Options{Target: attr.Class(0), MemoryBudget: 4 << 20}
	mo := Options{NPerturbSamples: 100}
	_, err := Infidelity(ctx, model, GaussianNoise(0.1), x, x, o, false, mo)
	check := func(name string, err error) {
		t.Helper()
		if !errors.Is(err, attr.ErrMemoryBudget) || !strings.Contains(err.Error(), "n_perturb_samples") || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v, want a memory budget error naming n_perturb_samples", name, err)
		}
		if c := calls.Swap(0); c != 0 {
			t.Errorf("%s: %d model calls before the refusal", name, c)
		}
	}
	check("Infidelity", err)
	_, err = SensitivityMax(ctx, &attr.FeatureAblation{Model: model}, nil, x, o, mo)
	check("SensitivityMax", err)
	if _, err := Infidelity(ctx, model, GaussianNoise(0.1), x, x, attr.Options{MemoryBudget: -1}, false, mo); err == nil || !strings.Contains(err.Error(), "MemoryBudget=-1") {
		t.Errorf("MemoryBudget=-1: %v", err)
	}
}
