package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/detect"
	"github.com/loupe-ml/loupe/internal/demo"
	"github.com/loupe-ml/loupe/npy"
	"github.com/loupe-ml/loupe/tensor"
)

func TestDemoDetection(t *testing.T) {
	dir := t.TempDir()
	out, err := runCLI(t, "demo", "--task", "detection", "--scenes", "1", "--masks", "50", "--quiet", "--out", dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"index.html", "objects found", "pointing game", "HiResCAM", "D-RISE"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, f := range []string{"index.html", "scene1.png", "scene1.svg", "scene1_GradCAM.npy"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s missing or empty", f)
		}
	}
	var ue usageError
	if _, err := runCLI(t, "demo", "--task=segmentation", "--out", dir); !errors.As(err, &ue) {
		t.Errorf("--task segmentation: %v, want a usage error", err)
	}
	if _, err := runCLI(t, "demo", "--task", "detection", "--scenes", "0", "--out", dir); !errors.As(err, &ue) {
		t.Errorf("--scenes 0: %v, want a usage error", err)
	}
}

// loupe explain --detections: the built-in detector and the same model
// from files with its configuration give the library's detections and
// maps.
func TestExplainDetections(t *testing.T) {
	dir := t.TempDir()
	img, _ := demo.Scene(2)
	x, _ := img.Reshape(1, 3, demo.SceneSize, demo.SceneSize)
	in := filepath.Join(dir, "x.npy")
	if err := npy.WriteFile(in, x); err != nil {
		t.Fatal(err)
	}
	d, err := demo.Detector()
	if err != nil {
		t.Fatal(err)
	}
	all, err := d.Detect(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	want, err := d.GradCAM(context.Background(), x, all[0], demo.DetectionLayer, false)
	if err != nil {
		t.Fatal(err)
	}
	o1 := filepath.Join(dir, "o1")
	out, err := runCLI(t, "explain", "--model", "demo-detector", "--input", in, "--detections", "all", "--method", "GradCAM",
		"--layer", demo.DetectionLayer, "--score", "0.5", "--quiet", "--out", o1)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	got, err := npy.ReadFile(filepath.Join(o1, "attributions_0.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Len() != want.Len() || tensor.MaxAbsDiff(got.F, want.F) > 1e-6 {
		t.Errorf("the command's maps %v differ from the library's %v", got.Shape, want.Shape)
	}
	var dets []detect.Detection
	b, err := os.ReadFile(filepath.Join(o1, "detections.json"))
	if err != nil || json.Unmarshal(b, &dets) != nil || len(dets) != len(all[0]) || dets[0].Label != all[0][0].Label {
		t.Errorf("detections.json: %s (%v)", b, err)
	}
	if st, err := os.Stat(filepath.Join(o1, "detections.png")); err != nil || st.Size() == 0 {
		t.Error("detections.png missing or empty")
	}

	// The same model from files, with its configuration; D-RISE on box 0.
	model := filepath.Join(dir, "det.onnx")
	cfg := filepath.Join(dir, "det.json")
	os.WriteFile(model, demo.DetectorBytes(), 0o644)
	os.WriteFile(cfg, demo.DetectorConfigJSON(), 0o644)
	o2 := filepath.Join(dir, "o2")
	out, err = runCLI(t, "explain", "--model", model, "--detector", cfg, "--input", in, "--detections", "0", "--method", "DRISE",
		"--param", "masks=40", "--score", "0.5", "--quiet", "--out", o2, "--format", "none")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	dr, err := npy.ReadFile(filepath.Join(o2, "attributions_0.npy"))
	if err != nil || dr.Shape[0] != 1 || dr.Len() != demo.SceneSize*demo.SceneSize {
		t.Errorf("D-RISE maps %v (%v), want one %dx%d map", dr.Shape, err, demo.SceneSize, demo.SceneSize)
	}
	// Saliency with the IoU target on the boxes of score at least 0.9.
	out, err = runCLI(t, "explain", "--model", model, "--detector", cfg, "--input", in, "--detections", "score=0.9", "--method", "Saliency",
		"--iou", "--quiet", "--out", filepath.Join(dir, "o3"), "--format", "none")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var ue usageError
	for _, args := range [][]string{
		{"--model", "demo-detector", "--input", in, "--detections", "9"},
		{"--model", "demo-detector", "--input", in, "--detections", "score=2"},
		{"--model", model, "--input", in, "--detections", "all"},
		{"--model", "demo-detector", "--input", in, "--detections", "all", "--method", "DRISE", "--param", "masks=-1"},
		{"--model", "demo-detector", "--input", in, "--detections", "all", "--method", "NoSuchMethod"},
	} {
		args = append([]string{"explain", "--quiet", "--out", filepath.Join(dir, "bad")}, args...)
		if _, err := runCLI(t, args...); !errors.As(err, &ue) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}
