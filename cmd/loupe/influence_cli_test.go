package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/internal/testmodels"
	"github.com/loupe-ml/loupe/npy"
	"github.com/loupe-ml/loupe/tensor"
)

// writeData writes a data folder of n mlp examples.
func writeData(t *testing.T, dir string, n int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	x := tensor.New(n, 6)
	for i := range x.F {
		x.F[i] = float32((i*37)%11)/5 - 1
	}
	l := tensor.NewInt(n)
	for i := range l.I {
		l.I[i] = int64(i % 4)
	}
	if err := npy.WriteFile(filepath.Join(dir, "inputs.npy"), x); err != nil {
		t.Fatal(err)
	}
	if err := npy.WriteFile(filepath.Join(dir, "labels.npy"), l); err != nil {
		t.Fatal(err)
	}
}

func TestInfluenceCommand(t *testing.T) {
	dir := t.TempDir()
	train, test := filepath.Join(dir, "train"), filepath.Join(dir, "test")
	writeData(t, train, 8)
	writeData(t, test, 2) // the first two training examples
	ck := testmodels.Path("mlp_s0.onnx")
	out, err := runCLI(t, "influence", "--train", train, "--test", test, "--checkpoint", ck+":0.1", "--checkpoint", ck+":0.05", "--k", "2", "--self", "--out", dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// Each test example is its own strongest proponent.
	if !strings.Contains(out, "test 0 proponents: 0 (") || !strings.Contains(out, "test 1 proponents: 1 (") || !strings.Contains(out, "self-influence") {
		t.Errorf("output:\n%s", out)
	}
	s, err := npy.ReadFile(filepath.Join(dir, "scores.npy"))
	if err != nil || s.Shape[0] != 2 || s.Shape[1] != 8 {
		t.Fatalf("scores: %v %v", s, err)
	}
	out, err = runCLI(t, "influence", "--method", "TracInCPFast", "--final-fc", "fc3", "--train", train, "--test", test, "--checkpoint", ck+":0.1")
	if err != nil || !strings.Contains(out, "opponents") {
		t.Errorf("fast: %v\n%s", err, out)
	}
	out, err = runCLI(t, "influence", "--method", "SimilarityInfluence", "--model", ck, "--layers", "fc1,tanh", "--train", train, "--test", test, "--k", "1")
	if err != nil || !strings.Contains(out, "test 0 most similar: 0 (1)") {
		t.Errorf("similarity: %v\n%s", err, out)
	}
	for _, bad := range [][]string{
		{"influence", "--train", train},
		{"influence", "--train", train, "--test", test},
		{"influence", "--train", train, "--test", test, "--checkpoint", ck},
		{"influence", "--train", train, "--test", test, "--checkpoint", ck + ":0.1", "--k", "-2"},
		{"influence", "--train", train, "--test", test, "--checkpoint", ck + ":0.1", "--batch-size", "0"},
		{"influence", "--train", train, "--test", test, "--checkpoint", ck + ":0.1", "--batch-size", "100000000"},
	} {
		if _, err := runCLI(t, bad...); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
