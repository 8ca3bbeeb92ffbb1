package main

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/npy"
	"github.com/loupe-ml/loupe/tensor"
)

// --memory-budget reaches the method: a budget too small for one occluded
// copy is refused naming Options.MemoryBudget, a sufficient one gives the
// attributions of the default budget, and a malformed one is a usage
// error.
func TestExplainMemoryBudget(t *testing.T) {
	dir := t.TempDir()
	x := tensor.New(1, 3, 32, 32)
	for i := range x.F {
		x.F[i] = float32((i*7919)%1000) / 1000
	}
	in := filepath.Join(dir, "x.npy")
	if err := npy.WriteFile(in, x); err != nil {
		t.Fatal(err)
	}
	args := func(out, budget string) []string {
		a := []string{"explain", "--model", cnn, "--input", in, "--out", filepath.Join(dir, out), "--quiet", "--format", "none",
			"--method", "Occlusion", "--target", "0", "--param", "sliding_window_shapes=3,8,8", "--param", "strides=3,8,8"}
		if budget != "" {
			a = append(a, "--memory-budget", budget)
		}
		return a
	}
	msg, err := runCLI(t, args("tiny", "10kB")...)
	if !errors.Is(err, attr.ErrMemoryBudget) || !strings.Contains(err.Error(), "MemoryBudget") {
		t.Fatalf("--memory-budget 10kB: %v\n%s", err, msg)
	}
	for _, b := range []string{"", "2MiB"} {
		if msg, err := runCLI(t, args("out"+b, b)...); err != nil {
			t.Fatalf("--memory-budget %q: %v\n%s", b, err, msg)
		}
	}
	want, err := npy.ReadFile(filepath.Join(dir, "out", "attributions_0.npy"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := npy.ReadFile(filepath.Join(dir, "out2MiB", "attributions_0.npy"))
	if err != nil {
		t.Fatal(err)
	}
	for e := range want.F {
		if got.F[e] != want.F[e] {
			t.Fatalf("element %d: %g with --memory-budget 2MiB, %g without", e, got.F[e], want.F[e])
		}
	}
	for _, bad := range []string{"-1", "lots", "3 parsecs"} {
		if _, err := runCLI(t, args("bad", bad)...); err == nil || !strings.Contains(err.Error(), "--memory-budget") {
			t.Errorf("--memory-budget %q: %v, want a usage error", bad, err)
		}
	}
	for s, want := range map[string]int64{"512": 512, "2MiB": 2 << 20, "1.5 GB": 1.5e9, "10kb": 10000} {
		if v, err := parseBytes(s); err != nil || v != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", s, v, err, want)
		}
	}
}
