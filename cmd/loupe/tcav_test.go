package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/internal/testmodels"
	"github.com/loupe-ml/loupe/npy"
	"github.com/loupe-ml/loupe/tensor"
)

func TestTCAVCommand(t *testing.T) {
	dir := t.TempDir()
	concepts := filepath.Join(dir, "concepts")
	write := func(name string, pattern []float32, seed float64) {
		d := filepath.Join(concepts, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		x := tensor.New(12, 6)
		for i := range x.F {
			x.F[i] = pattern[i%6] + 0.4*float32(math.Sin(float64(i)*seed))
		}
		if err := npy.WriteFile(filepath.Join(d, "a.npy"), x); err != nil {
			t.Fatal(err)
		}
		// One more example as a single row.
		one, _ := tensor.FromFloat32(append([]float32(nil), pattern...), 6)
		if err := npy.WriteFile(filepath.Join(d, "b.npy"), one); err != nil {
			t.Fatal(err)
		}
	}
	write("high", []float32{1, 1, 1, -1, -1, -1}, 1.1)
	for i, s := range []float64{2.3, 3.7, 5.1} {
		write("random_"+string(rune('0'+i)), []float32{0, 0, 0, 0, 0, 0}, s)
	}
	in := filepath.Join(dir, "x.npy")
	x := tensor.New(4, 6)
	for i := range x.F {
		x.F[i] = float32(math.Cos(float64(i)))
	}
	if err := npy.WriteFile(in, x); err != nil {
		t.Fatal(err)
	}
	mlp := testmodels.Path("mlp_s0.onnx")
	cavDir := filepath.Join(dir, "cavs")
	out, err := runCLI(t, "tcav", "--model", mlp, "--input", in, "--concepts", concepts, "--layers", "fc1,tanh", "--target", "1", "--save-cavs", cavDir)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "high,random_0") || !strings.Contains(out, "significance") || !strings.Contains(out, "p=") {
		t.Errorf("output:\n%s", out)
	}
	stored, _ := filepath.Glob(filepath.Join(cavDir, "default_model_id", "*.json"))
	// 3 concept sets + 2 random sets, 2 layers.
	if len(stored) != 10 {
		t.Errorf("%d CAV files stored, want 10", len(stored))
	}
	out, err = runCLI(t, "tcav", "--model", mlp, "--input", in, "--concepts", concepts, "--layers", "fc1", "--target", "1", "--sets", "high,random_1", "--classifier", "meandiff")
	if err != nil || strings.Contains(out, "significance") {
		t.Errorf("sets: %v\n%s", err, out)
	}
	if _, err := runCLI(t, "tcav", "--model", mlp, "--input", in, "--concepts", concepts, "--layers", "fc1", "--target", "1", "--sets", "high,nope"); err == nil {
		t.Error("unknown concept accepted")
	}
	if _, err := runCLI(t, "tcav", "--model", mlp, "--input", in); err == nil {
		t.Error("missing flags accepted")
	}
}
