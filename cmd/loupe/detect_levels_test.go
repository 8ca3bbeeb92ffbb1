package main

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/detect"
	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/npy"
	"github.com/loupe-ml/loupe/tensor"
)

// loupe explain --detections on a raw multi-level head (three outputs,
// detect/testdata/levels.onnx) declared with levels: the command joins
// them and gives the library's detections and maps.
func TestExplainDetectionLevels(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join("..", "..", "detect", "testdata", "levels.onnx")
	cfgJSON := `{"layout": "grid", "classes": ["a", "b"], "objectness": true, "sigmoid": true, "levels": [
		{"output": "p3", "stride": 8, "anchors": [[10, 13], [16, 30]]},
		{"output": "p4", "stride": 16, "anchors": [[30, 61], [62, 45]]},
		{"output": "p5", "stride": 32, "anchors": [[59, 119], [116, 90]]}]}`
	cfgFile := filepath.Join(dir, "levels.json")
	if err := os.WriteFile(cfgFile, []byte(cfgJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	x := tensor.New(1, 3, 64, 96)
	for i := range x.F {
		x.F[i] = float32(rng.Float64())
	}
	in := filepath.Join(dir, "x.npy")
	if err := npy.WriteFile(in, x); err != nil {
		t.Fatal(err)
	}
	cfg, err := detect.LoadConfig(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	m, err := engine.Load(model)
	if err != nil {
		t.Fatal(err)
	}
	d, err := detect.Open(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	d.ScoreThreshold = 0.3
	all, err := d.Detect(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	if len(all[0]) == 0 {
		t.Fatal("no detection of score 0.3")
	}
	want, err := d.GradCAM(context.Background(), x, all[0], "", false)
	if err != nil {
		t.Fatal(err)
	}
	o := filepath.Join(dir, "o")
	out, err := runCLI(t, "explain", "--model", model, "--detector", cfgFile, "--input", in, "--detections", "all",
		"--method", "GradCAM", "--score", "0.3", "--quiet", "--out", o, "--format", "none")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	got, err := npy.ReadFile(filepath.Join(o, "attributions_0.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Len() != want.Len() || tensor.MaxAbsDiff(got.F, want.F) > 1e-6 {
		t.Errorf("the command's maps %v differ from the library's %v", got.Shape, want.Shape)
	}
	var dets []detect.Detection
	b, err := os.ReadFile(filepath.Join(o, "detections.json"))
	if err != nil || json.Unmarshal(b, &dets) != nil || len(dets) != len(all[0]) || dets[0].Index != all[0][0].Index {
		t.Errorf("detections.json: %s (%v), want %d detections", b, err, len(all[0]))
	}
	// A configuration missing a level is a usage error naming the output.
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"layout": "grid", "classes": ["a", "b"], "objectness": true, "levels": [
		{"output": "p3", "stride": 8, "anchors": [[10, 13], [16, 30]]}]}`), 0o644)
	var ue usageError
	if _, err := runCLI(t, "explain", "--model", model, "--detector", bad, "--input", in, "--detections", "all",
		"--quiet", "--out", filepath.Join(dir, "bad")); err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), `"p4"`) {
		t.Errorf("a missing level: %v, want a usage error", err)
	}
}
