package methods

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/npy"
	"github.com/loupe-ml/loupe/tensor"
)

// Negative, absurd or non-finite numbers are refused by Resolve, before
// anything is built, with the parameter's name and range.
func TestResolveBounds(t *testing.T) {
	tab := table()
	for _, tc := range []struct {
		method, param, want string
	}{
		{"IntegratedGradients", "n_steps=1000000000", "n_steps=1e+09: want 1 to 1000"},
		{"IntegratedGradients", "n_steps=0", "want 1 to 1000"},
		{"IntegratedGradients", "n_steps=-3", "n_steps=-3"},
		{"IntegratedGradients", "internal_batch_size=-1", "internal_batch_size"},
		{"GradientShap", "n_samples=-3", "n_samples=-3: want 1 to 1000"},
		{"GradientShap", "stdevs=NaN", "stdevs=NaN: want a finite number"},
		{"GradientShap", "stdevs=-1", "stdevs"},
		{"GradientShap", "stdevs=+Inf", "finite"},
		{"GradientShap", "seed=-1", "seed"},
		{"Lime", "n_samples=1000000000", "n_samples"},
		{"Lime", "feature_grid=-2", "feature_grid"},
		{"FeatureAblation", "perturbations_per_eval=100000", "perturbations_per_eval"},
		{"NoiseTunnel", "nt_samples=100000", "nt_samples=100000: want 1 to 500"},
		{"Occlusion", "sliding_window_shapes=3,0,8", "sliding_window_shapes=0"},
		{"Occlusion", "strides=1,-1,1", "strides=-1"},
		{"LRP", "epsilon=-1", "epsilon"},
		{"NeuronGradient", "neuron=1,-2,2", "neuron=-2"},
	} {
		_, err := Resolve(tc.method, tab[tc.method], []string{tc.param})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %s: %v, want an error mentioning %q", tc.method, tc.param, err, tc.want)
		}
	}
	// The defaults and ordinary values pass.
	for name, spec := range tab {
		if _, err := Resolve(name, spec, nil); err != nil {
			t.Errorf("%s with its defaults: %v", name, err)
		}
	}
	for _, p := range []string{"n_steps=1000", "n_steps=1", "internal_batch_size=0"} {
		if _, err := Resolve("IntegratedGradients", tab["IntegratedGradients"], []string{p}); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if lo, hi, ok := Bound("n_steps"); !ok || lo != 1 || hi != 1000 {
		t.Errorf("Bound(n_steps) = %g, %g, %v", lo, hi, ok)
	}
	// Build checks the bounds too, for Values not made by Resolve.
	if _, err := tab["IntegratedGradients"].Build(nil, "", Values{"n_steps": "-5", "method": "gausslegendre", "internal_batch_size": "0"}); err == nil || !strings.Contains(err.Error(), "want 1 to 1000") {
		t.Errorf("Build with n_steps=-5: %v", err)
	}
	if _, err := tab["Occlusion"].Build(nil, "", Values{"perturbations_per_eval": "0", "sliding_window_shapes": "1,1,1,1,1,1,1,1,1"}); err == nil || !strings.Contains(err.Error(), "at most 8") {
		t.Errorf("Occlusion with a window of 9 dimensions: %v", err)
	}
}

// NoFiles refuses file parameters (and opens nothing); without it the
// command line reads them.
func TestResolveNoFiles(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "mask.npy")
	if err := npy.WriteFile(f, tensor.NewInt(1, 3, 4, 4)); err != nil {
		t.Fatal(err)
	}
	tab := table()
	for _, name := range []string{"FeatureAblation", "Lime", "KernelShap", "NeuronFeatureAblation"} {
		for _, v := range []string{f, "/etc/passwd", "/dev/zero"} {
			_, err := Resolve(name, tab[name], []string{"feature_mask=" + v}, NoFiles())
			if err == nil || !strings.Contains(err.Error(), "feature_mask names files") {
				t.Errorf("%s feature_mask=%s with NoFiles: %v", name, v, err)
			}
		}
		if _, err := Resolve(name, tab[name], []string{"feature_mask="}, NoFiles()); err != nil {
			t.Errorf("%s with an empty feature_mask: %v", name, err)
		}
	}
	p, err := Resolve("FeatureAblation", tab["FeatureAblation"], []string{"feature_mask=" + f})
	if err != nil || p["feature_mask"] != f {
		t.Fatalf("the command line's feature_mask: %v %v", p, err)
	}
	if _, err := os.Stat(f); err != nil {
		t.Fatal(err)
	}
	if !IsFile(maskParam) || IsFile(gridParam) {
		t.Error("IsFile: feature_mask is a file, feature_grid is not")
	}
}

// Every parameter whose default is a number has a bound: a new numeric
// parameter needs its range in bounds.
func TestEveryNumberBounded(t *testing.T) {
	for name, spec := range table() {
		for _, q := range spec.Params {
			if _, err := strconv.ParseFloat(strings.Split(q.Default, ",")[0], 64); err != nil {
				continue
			}
			if _, _, ok := Bound(q.Name); !ok {
				t.Errorf("%s's parameter %s (default %s) has no bound: add its range to bounds in methods.go", name, q.Name, q.Default)
			}
		}
	}
}
