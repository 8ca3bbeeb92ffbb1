package explain

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/tensor"
)

// Check resolves as Run does, without running, and refuses what Run
// refuses before running.
func TestCheck(t *testing.T) {
	spec, vals, err := Check(Request{Method: "IntegratedGradients", Params: []string{"n_steps=7"}})
	if err != nil {
		t.Fatal(err)
	}
	if vals["n_steps"] != "7" || vals["method"] != "gausslegendre" || spec.Layer {
		t.Errorf("values %v, layer %v", vals, spec.Layer)
	}
	for _, c := range []struct {
		r    Request
		says string
	}{
		{Request{Method: "IntegratedGradient"}, "did you mean IntegratedGradients"},
		{Request{Method: "Saliency", Params: []string{"ab=false"}}, `no parameter "ab" (did you mean abs?)`},
		{Request{Method: "IntegratedGradients", Params: []string{"n_steps=100000"}}, "n_steps=100000"},
		{Request{Method: "FeatureAblation", Params: []string{"feature_mask=/etc/passwd"}, NoFiles: true}, "names files"},
	} {
		_, _, err := Check(c.r)
		var re *RequestError
		if !errors.As(err, &re) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%v: %v, want a RequestError saying %q", c.r, err, c.says)
		}
	}
	// Without NoFiles a file parameter is taken (it is read when the method is built).
	if _, vals, err := Check(Request{Method: "FeatureAblation", Params: []string{"feature_mask=/nonexistent.npy"}}); err != nil || vals["feature_mask"] != "/nonexistent.npy" {
		t.Errorf("file parameter without NoFiles: %v %v", vals, err)
	}
}

// Examples resolves every form of target for a batch, the predicted
// class from the output given, and checks indices against it.
func TestTargetExamples(t *testing.T) {
	y, _ := tensor.FromFloat32([]float32{0, 3, 1, 5, 2, 0}, 2, 3) // predicted: 1, 0
	for _, c := range []struct {
		t    Target
		want [][]int
	}{
		{Target{}, nil},
		{Predicted(), [][]int{{1}, {0}}},
		{Class(2), [][]int{{2}, {2}}},
		{Indices([]int{2}, []int{0}), [][]int{{2}, {0}}},
	} {
		got, err := c.t.Examples(2, y)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %v %v, want %v", c.t, got, err, c.want)
		}
	}
	// Targets from text read the same.
	if tt, err := ParseTarget("2,0"); err != nil || tt.String() != Indices([]int{2}, []int{0}).String() {
		t.Errorf("ParseTarget(2,0) = %v %v", tt, err)
	}
	for _, c := range []struct {
		t    Target
		y    *tensor.Tensor
		says string
	}{
		{Class(3), y, "target 3: the model has 3 outputs per example"},
		{Indices([]int{1}), y, "1 indices for 2 examples"},
		{Indices([]int{1}, []int{-1}), nil, "index -1 is negative"},
		{Indices([]int{0, 1}, []int{0, 1}), y, "2 indices for outputs of shape [3]"},
		{Predicted(), nil, "output is needed"},
		{Predicted(), tensor.New(2), "needs scores [N, classes]"},
	} {
		_, err := c.t.Examples(2, c.y)
		var re *RequestError
		if !errors.As(err, &re) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v, want a RequestError saying %q", c.t, err, c.says)
		}
	}
	// Index tuples for outputs of more dimensions.
	y3 := tensor.New(2, 2, 4)
	if got, err := mustParse(t, "(1,3)").Examples(2, y3); err != nil || !reflect.DeepEqual(got, [][]int{{1, 3}, {1, 3}}) {
		t.Errorf("(1,3): %v %v", got, err)
	}
	if _, err := mustParse(t, "(1,4)").Examples(2, y3); err == nil || !strings.Contains(err.Error(), "index 4 is beyond the output's dimension 1 of 4") {
		t.Errorf("(1,4): %v", err)
	}
}

// mustParse parses a target or fails the test.
func mustParse(t *testing.T, s string) Target {
	t.Helper()
	tt, err := ParseTarget(s)
	if err != nil {
		t.Fatal(err)
	}
	return tt
}

// Run with Delta gives IntegratedGradients' delta, attr's own; asks none
// of NoiseTunnel around Saliency (which has none: attr fails when asked)
// and gives NoiseTunnel around IntegratedGradients its inner method's
// deltas.
func TestRunDelta(t *testing.T) {
	nt, x := demoNet(t)
	xs := []*tensor.Tensor{x}
	ctx := context.Background()
	got, err := Run(ctx, nt, xs, Request{Method: "IntegratedGradients", Params: []string{"n_steps=8"}, Target: Class(1), Delta: true})
	if err != nil {
		t.Fatal(err)
	}
	want, err := (&attr.IntegratedGradients{Net: nt, NSteps: 8}).Attribute(ctx, xs, attr.Options{Target: attr.Class(1), Delta: true})
	if err != nil {
		t.Fatal(err)
	}
	if got.Delta == nil || tensor.MaxAbsDiff(got.Delta.F, want.Delta.F) != 0 {
		t.Errorf("delta %v, attr's %v", got.Delta, want.Delta)
	}
	if got, err := Run(ctx, nt, xs, Request{Method: "IntegratedGradients", Params: []string{"n_steps=8"}, Target: Class(1)}); err != nil || got.Delta != nil {
		t.Errorf("without Delta: delta %v, %v", got.Delta, err)
	}
	if _, err := (&attr.NoiseTunnel{Method: &attr.Saliency{Net: nt}, NSamples: 2}).Attribute(ctx, xs, attr.Options{Target: attr.Class(1), Delta: true}); err == nil {
		t.Log("attr's NoiseTunnel around Saliency no longer fails when asked for a delta")
	}
	got, err = Run(ctx, nt, xs, Request{Method: "NoiseTunnel", Params: []string{"nt_samples=2"}, Target: Class(1), Delta: true})
	if err != nil || got.Delta != nil {
		t.Errorf("NoiseTunnel around Saliency with Delta: %v, %v", got, err)
	}
	got, err = Run(ctx, nt, xs, Request{Method: "NoiseTunnel", Params: []string{"nt_samples=2", "inner=IntegratedGradients"}, Target: Class(1), Delta: true})
	if err != nil || got.Delta == nil || got.Delta.Len() != 2*2 { // one per noisy copy, as Captum's
		t.Errorf("NoiseTunnel around IntegratedGradients with Delta: %v, %v", got, err)
	}
}
