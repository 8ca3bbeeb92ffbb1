package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/options/jobopts"
	"github.com/loupe-ml/loupe/npy"
	"github.com/loupe-ml/loupe/tensor"
)

// batchFolder writes a small data set for cnn_s0 ([N, 3, 32, 32]): three
// .npy files of one example, one of two, and a PNG picture.
func batchFolder(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for i, rows := range []int{1, 1, 2, 1} {
		x := tensor.New(rows, 3, 32, 32)
		for j := range x.F {
			x.F[j] = float32((j*7919+i*104729)%1000) / 1000
		}
		if err := npy.WriteFile(filepath.Join(dir, fmt.Sprintf("x%d.npy", i)), x); err != nil {
			t.Fatal(err)
		}
	}
	img := image.NewRGBA(image.Rect(0, 0, 32, 32))
	for y := 0; y < 32; y++ {
		for x := 0; x < 32; x++ {
			img.Set(x, y, color.RGBA{uint8(8 * x), uint8(8 * y), uint8(x * y), 255})
		}
	}
	f, err := os.Create(filepath.Join(dir, "picture.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	return dir
}

// closeTo says whether a and b differ by at most tol times b's largest
// magnitude.
func closeTo(a, b []float32, tol float64) bool {
	if len(a) != len(b) {
		return false
	}
	scale := 0.0
	for _, v := range b {
		scale = max(scale, math.Abs(float64(v)))
	}
	for i := range a {
		if math.Abs(float64(a[i])-float64(b[i])) > tol*scale {
			return false
		}
	}
	return true
}

// manifestLines reads OUT/manifest.jsonl.
func manifestLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	f, err := os.Open(filepath.Join(out, "manifest.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, m)
	}
	return lines
}

// TestBatchMatchesExplain runs loupe batch over a small folder on the
// local runners and checks that each file's attributions are what loupe
// explain writes for that file alone with the same flags: bit for bit
// file by file (the default), up to float rounding with several files
// per call (--batch).
func TestBatchMatchesExplain(t *testing.T) {
	data := batchFolder(t)
	cases := [][]string{
		{"--runner", "direct", "--method", "IntegratedGradients", "--target", "pred", "--param", "n_steps=10"},
		{"--runner", "prism", "--method", "Saliency", "--target", "2", "--batch", "3", "--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25"},
		{"--runner", "direct", "--method", "GuidedBackprop", "--target", "1", "--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25"},
	}
	for _, flags := range cases {
		t.Run(flags[1]+"/"+flags[3], func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			args := append([]string{"batch", "--model", cnn, "--data", data, "--out", out, "--quiet"}, flags...)
			got, err := runCLI(t, args...)
			if err != nil {
				t.Fatalf("loupe batch: %v\n%s", err, got)
			}
			if !strings.Contains(got, "on Apache Beam (runner "+flags[1]) || !strings.Contains(got, "5 files: 5 explained, 0 done before, 0 failed") {
				t.Errorf("output does not say the runner and the counts:\n%s", got)
			}
			explainFlags := slices.Clone(flags[2:])
			if i := slices.Index(explainFlags, "--batch"); i >= 0 {
				explainFlags = slices.Delete(explainFlags, i, i+2)
			}
			lines := manifestLines(t, out)
			if len(lines) != 5 {
				t.Fatalf("%d manifest lines, want 5", len(lines))
			}
			for _, l := range lines {
				name := l["input"].(string)
				dir := t.TempDir()
				args := append([]string{"explain", "--model", cnn, "--input", filepath.Join(data, name), "--out", dir, "--format", "none", "--quiet"}, explainFlags...)
				if msg, err := runCLI(t, args...); err != nil {
					t.Fatalf("loupe explain %s: %v\n%s", name, err, msg)
				}
				want, err := npy.ReadFile(filepath.Join(dir, "attributions_0.npy"))
				if err != nil {
					t.Fatal(err)
				}
				have, err := npy.ReadFile(filepath.Join(out, strings.TrimSuffix(name, filepath.Ext(name))+".npy"))
				if err != nil {
					t.Fatal(err)
				}
				same := slices.Equal(have.F, want.F)
				if slices.Contains(flags, "--batch") {
					same = closeTo(have.F, want.F, 1e-5) // several files a call: up to float rounding
				}
				if !slices.Equal(have.Shape, want.Shape) || !same {
					t.Errorf("%s: batch's attributions %v differ from explain's %v", name, have.Shape, want.Shape)
				}
				if preds := l["predictions"].([]any); len(preds) != want.Shape[0] {
					t.Errorf("%s: %d predictions for %d rows", name, len(preds), want.Shape[0])
				}
			}
		})
	}
}

// TestBatchRestartAndBadFile checks that a bad file is reported and does
// not stop the job, and that a second run does only what is left.
func TestBatchRestartAndBadFile(t *testing.T) {
	data := batchFolder(t)
	if err := os.WriteFile(filepath.Join(data, "broken.png"), []byte("not a picture"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	// Without a target every file fails (the model gives ten scores):
	// the job stops after the first three it could read.
	args := []string{"batch", "--model", cnn, "--data", data, "--out", out, "--method", "Saliency", "--quiet"}
	if got, err := runCLI(t, args...); err == nil || !strings.Contains(err.Error(), "the first 3 files fail") {
		t.Errorf("no target: %v\n%s", err, got)
	}
	args = append(args, "--target", "pred")
	got, err := runCLI(t, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, got)
	}
	if !strings.Contains(got, "6 files: 5 explained, 0 done before, 1 failed") || !strings.Contains(got, "failed: broken.png:") {
		t.Errorf("first run:\n%s", got)
	}
	lines := manifestLines(t, out)
	if lines[0]["input"] != "broken.png" || lines[0]["error"] == nil {
		t.Errorf("manifest's first line %v: want broken.png with its error", lines[0])
	}
	os.Remove(filepath.Join(data, "broken.png"))
	if got, err = runCLI(t, args...); err != nil || !strings.Contains(got, "5 files: 0 explained, 5 done before, 0 failed") {
		t.Errorf("second run (%v):\n%s", err, got)
	}
}

// TestBatchFlagsReachBeam checks that --runner, --endpoint and Beam's
// own flags reach Beam, for a cluster runner, without a cluster: the
// pipeline is handed to a stand-in for Beam's runner.
func TestBatchFlagsReachBeam(t *testing.T) {
	data := batchFolder(t)
	var runner, endpoint, env, job string
	exec := func(ctx context.Context, r string, p *beam.Pipeline) error {
		runner, endpoint, env, job = r, *jobopts.Endpoint, *jobopts.EnvironmentType, *jobopts.JobName
		return nil
	}
	args := []string{"--model", cnn, "--data", data, "--out", t.TempDir(), "--method", "Saliency", "--target", "pred", "--quiet",
		"--runner", "flink", "--endpoint", "flink-jobserver:8099", "--environment_type", "LOOPBACK", "--job_name=loupe-test"}
	var out strings.Builder
	if err := cmdBatch(context.Background(), args, &out, io.Discard, exec); err != nil {
		t.Fatal(err)
	}
	if runner != "flink" || endpoint != "flink-jobserver:8099" || env != "LOOPBACK" || job != "loupe-test" {
		t.Errorf("Beam got runner %q, endpoint %q, environment %q, job %q", runner, endpoint, env, job)
	}
	if !strings.Contains(out.String(), "runner flink, submitted to flink at flink-jobserver:8099") {
		t.Errorf("output:\n%s", out.String())
	}
	for _, bad := range [][]string{{"--runner", "mapreduce"}, {"--no_such_flag", "1"}, {"--target", "1,2"}, {"--metrics", "accuracy"}} {
		err := cmdBatch(context.Background(), append([]string{"--model", cnn, "--data", data, "--quiet"}, bad...), io.Discard, io.Discard, exec)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("%q: %v, want a usage error", bad, err)
		}
	}
}
