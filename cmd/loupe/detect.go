package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/detect"
	"github.com/loupe-ml/loupe/internal/demo"
	"github.com/loupe-ml/loupe/internal/explain"
	"github.com/loupe-ml/loupe/npy"
	"github.com/loupe-ml/loupe/tensor"
)

// This file holds the object-detection commands: loupe demo --task
// detection and loupe explain --detections.

// flagValue returns the value of a --name flag in args ("--name v",
// "--name=v", one or two dashes), and whether it is there.
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if a == "--" {
			break
		}
		t := strings.TrimLeft(a, "-")
		if t == a || len(a)-len(t) > 2 {
			continue
		}
		if t == name {
			if i+1 < len(args) {
				return args[i+1], true
			}
			return "", true
		}
		if v, ok := strings.CutPrefix(t, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// demoTask returns the --task of loupe demo (classification by default).
func demoTask(args []string) string {
	if v, ok := flagValue(args, "task"); ok {
		return v
	}
	return "classification"
}

// cmdDemoDetection runs the detection demo: the built-in detector on
// generated scenes, each detection explained by GradCAM, HiResCAM,
// Saliency and D-RISE, with the pointing game per box.
func cmdDemoDetection(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "loupe-demo", "folder for the report")
	quiet := fs.Bool("quiet", false, "no progress bar")
	fs.String("task", "detection", "classification or detection")
	scenes := fs.Int("scenes", 6, "detection: number of generated scenes")
	masks := fs.Int("masks", 1000, "detection: D-RISE's number of masks")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if *scenes < 1 || *scenes > 1000 {
		return usageError{fmt.Errorf("--scenes %d: want 1 to 1000", *scenes)}
	}
	if *masks < 1 || *masks > 100000 {
		return usageError{fmt.Errorf("--masks %d: want 1 to 100000", *masks)}
	}
	rep, err := demo.RunDetection(ctx, *out, demo.DetectionOptions{Scenes: *scenes, FirstSeed: 1, Masks: *masks, Figures: true},
		progressBar(stderr, "explaining", *quiet))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s\n", filepath.Join(*out, "index.html"))
	fmt.Fprintf(stdout, "%d of %d objects found, %d false detections\n", rep.Found, rep.Objects, rep.False)
	fmt.Fprintf(stdout, "pointing game per box (a random peak would score %.2f):\n", rep.Chance)
	for _, m := range rep.Methods {
		fmt.Fprintf(stdout, "  %-10s %.2f\n", m, rep.Pointing[m])
	}
	return nil
}

// wantsDetections reports whether loupe explain was asked to explain a
// detector's detections.
func wantsDetections(args []string) bool {
	_, ok := flagValue(args, "detections")
	return ok
}

// cmdExplainDetections runs a detector on one image, keeps the
// detections --detections selects, and explains each with a method: any
// method of loupe methods with the box's score as its target, or D-RISE.
// It writes detections.json, the maps as .npy and a figure with the boxes
// and each box's map.
func cmdExplainDetections(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := newExplainFlags(fs)
	sel := fs.String("detections", "all", "detections to explain: all, score=S (those of at least score S), or indices 0,2 into the detections, best first")
	cfgFile := fs.String("detector", "", "the detector's decoding configuration (JSON: layout, classes, objectness, stride, anchors, decoding, sigmoid, levels; see docs/detection.md); not needed with --model demo-detector, the built-in detector")
	iou := fs.Bool("iou", false, "target the box's score times its IoU with the detected box (not the score alone)")
	scoreTh := fs.Float64("score", 0.25, "detections: score threshold before non-maximum suppression")
	iouTh := fs.Float64("nms-iou", 0.45, "detections: IoU above which non-maximum suppression drops the weaker box")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if f.method == "IntegratedGradients" && !isSet(fs, "method") {
		f.method = "GradCAM"
	}
	if !(*scoreTh > 0 && *scoreTh < 1) || !(*iouTh > 0 && *iouTh <= 1) {
		return usageError{fmt.Errorf("--score and --nms-iou must lie in (0, 1)")}
	}
	d, err := loadDetector(f.model, *cfgFile)
	if err != nil {
		return err
	}
	if f.model == "demo-detector" && f.layer == "" {
		f.layer = demo.DetectionLayer // the last convolution is the head
	}
	if f.layer == "" && len(d.Config.Levels) > 0 {
		// The last convolution is one level's head: explain a layer all
		// levels share.
		if f.layer, err = d.CAMLayer(); err != nil {
			return usageError{err}
		}
	}
	d.ScoreThreshold, d.IoUThreshold = *scoreTh, *iouTh
	pre, err := f.image()
	if err != nil {
		return err
	}
	if len(f.inputs) != 1 {
		return usageError{errors.New("--detections explains one image: give it with --input (a .npy [1, C, H, W] or an image file)")}
	}
	x, shown, err := readInput(f.inputs[0], pre)
	if err != nil {
		return fmt.Errorf("input %s: %w", f.inputs[0], err)
	}
	if x.Rank() != 4 || x.Shape[0] != 1 {
		return usageError{fmt.Errorf("input %s has shape %v; want one image [1, C, H, W]", f.inputs[0], x.Shape)}
	}
	all, err := d.Detect(ctx, x)
	if err != nil {
		return err
	}
	dets, err := selectDetections(all[0], *sel)
	if err != nil {
		return usageError{err}
	}
	if err := os.MkdirAll(f.out, 0o755); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(f.out, "detections.json"), all[0]); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d detections (%d explained):\n", len(all[0]), len(dets))
	for i, dt := range all[0] {
		fmt.Fprintf(stdout, "  %d %-12s %.3f [%.1f %.1f %.1f %.1f]\n", i, dt.Label, dt.Score, dt.Box[0], dt.Box[1], dt.Box[2], dt.Box[3])
	}
	if len(dets) == 0 {
		fmt.Fprintln(stdout, "nothing to explain")
		return nil
	}
	maps, err := explainBoxes(ctx, d, x, dets, f, *iou, progressBar(stderr, f.method, f.quiet))
	if err != nil {
		return err
	}
	file := filepath.Join(f.out, "attributions_0.npy")
	if err := npy.WriteFile(file, maps); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s %v\n", file, maps.Shape)
	img := shown
	if img == nil {
		img, _ = x.Reshape(x.Shape[1:]...)
	}
	if img.Shape[0] != 1 && img.Shape[0] != 3 {
		return nil // no picture of a non-image input
	}
	title := f.title
	if title == "" {
		title = f.method + " per detection"
	}
	fig, err := demo.DetectionFigure(title, img, dets, []string{f.method}, map[string]*tensor.Tensor{f.method: maps}, nil)
	if err != nil {
		return err
	}
	for _, ext := range []string{"png", "svg"} {
		if f.format != "both" && f.format != ext {
			continue
		}
		name := filepath.Join(f.out, "detections."+ext)
		if err := fig.WriteFile(name); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s\n", name)
	}
	return nil
}

// isSet reports whether a flag was given.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// loadDetector loads a detector and its decoding configuration (joining
// the outputs of a multi-level head); "demo-detector" is the built-in one.
func loadDetector(model, cfgFile string) (*detect.Detector, error) {
	if model == "demo-detector" {
		return demo.Detector()
	}
	if cfgFile == "" {
		return nil, usageError{errors.New("--detections needs the detector's decoding configuration: --detector config.json (or --model demo-detector)")}
	}
	cfg, err := detect.LoadConfig(cfgFile)
	if err != nil {
		return nil, usageError{err}
	}
	m, err := loadModel(model)
	if err != nil {
		return nil, err
	}
	d, err := detect.Open(m, cfg)
	if err != nil {
		return nil, usageError{err}
	}
	return d, nil
}

// selectDetections applies --detections: all, score=S or indices.
func selectDetections(dets []detect.Detection, sel string) ([]detect.Detection, error) {
	switch {
	case sel == "all" || sel == "":
		return dets, nil
	case strings.HasPrefix(sel, "score="):
		s, err := strconv.ParseFloat(strings.TrimPrefix(sel, "score="), 64)
		if err != nil || !(s >= 0 && s <= 1) {
			return nil, fmt.Errorf("--detections %q: want score=S with S in [0, 1]", sel)
		}
		var out []detect.Detection
		for _, d := range dets {
			if d.Score >= s {
				out = append(out, d)
			}
		}
		return out, nil
	}
	var out []detect.Detection
	for _, p := range strings.Split(sel, ",") {
		i, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil {
			return nil, fmt.Errorf("--detections %q: want all, score=S or indices such as 0,2", sel)
		}
		if i < 0 || i >= len(dets) {
			return nil, fmt.Errorf("--detections: index %d out of range (%d detections)", i, len(dets))
		}
		out = append(out, dets[i])
	}
	return out, nil
}

// explainBoxes explains each detection with the method: D-RISE, or a
// method of the table built as loupe explain builds it, with the box as
// its target. It returns the maps, one row per detection.
func explainBoxes(ctx context.Context, d *detect.Detector, x *tensor.Tensor, dets []detect.Detection, f *explainFlags, iou bool, progress attr.Progress) (*tensor.Tensor, error) {
	if f.method == "DRISE" || f.method == "D-RISE" {
		dr := &detect.DRISE{Detector: d, Progress: progress}
		for _, kv := range f.params {
			k, v, _ := strings.Cut(kv, "=")
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, usageError{fmt.Errorf("--param %s: want an integer", kv)}
			}
			switch k {
			case "masks":
				dr.Masks = n
			case "cells":
				dr.Cells = n
			case "batch_size":
				dr.BatchSize = n
			case "seed":
				dr.Seed = uint64(n)
			default:
				return nil, usageError{fmt.Errorf("--param %s: D-RISE takes masks, cells, batch_size and seed", kv)}
			}
		}
		m, err := dr.Attribute(ctx, x, dets)
		if err != nil {
			return nil, usageError{err}
		}
		return m, nil
	}
	spec, vals, err := explain.Resolve(f.method, f.params)
	if err != nil {
		if errors.Is(err, explain.ErrUnknownMethod) {
			return nil, usageError{fmt.Errorf("%w (see loupe methods; D-RISE is DRISE)", err)}
		}
		return nil, usageError{err}
	}
	m, err := spec.Build(d.Net, f.layer, vals)
	if err != nil {
		return nil, usageError{err}
	}
	r, err := d.Explain(ctx, m, x, dets, iou)
	if err != nil {
		return nil, err
	}
	if len(r.Attributions) == 0 || r.Attributions[0] == nil {
		return nil, fmt.Errorf("%s gave no attribution of the image", f.method)
	}
	return r.Attributions[0], nil
}

// writeJSON writes v as indented JSON.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
