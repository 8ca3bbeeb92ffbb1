package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/internal/testmodels"
	"github.com/loupe-ml/loupe/npy"
	"github.com/loupe-ml/loupe/robust"
	"github.com/loupe-ml/loupe/tensor"
)

// loupe robust writes what the library's FGSM computes, and reports the
// predictions.
func TestRobustMatchesLibrary(t *testing.T) {
	dir := t.TempDir()
	x, _ := tensor.FromFloat32([]float32{0.5, -0.2, 0.1, 0.3, 0.3, -0.4}, 2, 3)
	in := filepath.Join(dir, "x.npy")
	if err := npy.WriteFile(in, x); err != nil {
		t.Fatal(err)
	}
	toy := testmodels.Path("toy.onnx")
	out, err := runCLI(t, "robust", "--model", toy, "--input", in, "--epsilon", "0.1", "--target", "1", "--out", dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "predictions changed") {
		t.Errorf("output:\n%s", out)
	}
	got, err := npy.ReadFile(filepath.Join(dir, "perturbed.npy"))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := engine.Load(toy)
	nt, _ := attr.NewNet(m)
	want, err := (&robust.FGSM{Net: nt, LossFunc: robust.CrossEntropy}).Perturb(context.Background(), []*tensor.Tensor{x}, 0.1, []int{1}, robust.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range want[0].F {
		if got.F[i] != want[0].F[i] {
			t.Fatalf("perturbed %v, library %v", got.F, want[0].F)
		}
	}
	out, err = runCLI(t, "robust", "--model", toy, "--input", in, "--attack", "PGD", "--radius", "2", "--step-size", "0.1", "--steps", "3", "--search", "--arg-max", "3", "--arg-step", "0.05")
	if err != nil || !strings.Contains(out, "smallest radius") {
		t.Errorf("search: %v\n%s", err, out)
	}
	for _, bad := range [][]string{
		{"robust", "--model", toy},
		{"robust", "--model", toy, "--input", in, "--attack", "CW"},
		{"robust", "--model", toy, "--input", in, "--target", "7"},
	} {
		if _, err := runCLI(t, bad...); err == nil {
			t.Errorf("%v accepted", bad)
		} else if _, ok := err.(usageError); !ok {
			t.Errorf("%v: %v is not a usage error", bad, err)
		}
	}
}
