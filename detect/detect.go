// Package detect runs and explains single-stage object detectors (YOLO
// style) given as ONNX models: it decodes the model's output in Go from a
// small declared Config (raw grid outputs with anchors or anchor-free,
// strides, sigmoid or not, with or without objectness, one output or one
// per level of a multi-level head, joined in the graph by Join; or the
// decoded outputs of YOLOv5 and YOLOv8 exports), applies non-maximum
// suppression, and explains each detection: GradCAM for a box (FoxAI's
// LayerGradCAMObjectDetection), any attr method with the box as its target
// (attr.BoxScore), and D-RISE, the black-box method for detectors.
package detect

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/tensor"
)

// Detection is one detected object.
type Detection struct {
	// Index is the prediction the detection comes from (see Config's
	// layouts): the handle by which a target reads it again.
	Index int
	Class int
	Label string
	// Score is the objectness times the class probability.
	Score float64
	Box   [4]float64 // x1, y1, x2, y2 in input pixels
}

// Target returns the attr target that explains the detection: its class
// score, times the IoU of its box with the detected box when iou is set.
func (d Detection) Target(c Config, iou bool) attr.Target {
	return attr.BoxScore(c, d.box(iou))
}

func (d Detection) box(iou bool) attr.Box {
	return attr.Box{Detection: d.Index, Class: d.Class, IoU: iou, Ref: d.Box}
}

// Detector is a detector model with the configuration that decodes its
// output and the thresholds of its non-maximum suppression.
type Detector struct {
	Net    *attr.Net
	Config Config
	// ScoreThreshold keeps detections of at least this score (0: 0.25,
	// YOLOv5's default).
	ScoreThreshold float64
	// IoUThreshold suppresses a detection that overlaps a better one of
	// its class by more than this (0: 0.45, YOLOv5's default).
	IoUThreshold float64
	// MaxDetections bounds the detections per image (0: 100).
	MaxDetections int
}

func (d *Detector) thresholds() (float64, float64, int) {
	s, i, m := d.ScoreThreshold, d.IoUThreshold, d.MaxDetections
	if s == 0 {
		s = 0.25
	}
	if i == 0 {
		i = 0.45
	}
	if m == 0 {
		m = 100
	}
	return s, i, m
}

// Detect runs the detector on a batch of images [N, C, H, W] and returns
// each image's detections after non-maximum suppression, best first.
// Cost: one forward pass.
func (d *Detector) Detect(ctx context.Context, x *tensor.Tensor) ([][]Detection, error) {
	if d == nil || d.Net == nil {
		return nil, fmt.Errorf("detect: no detector")
	}
	if x == nil || x.Rank() < 1 || x.Shape[0] < 1 {
		return nil, fmt.Errorf("detect: want a batch of images [N, C, H, W]")
	}
	out, err := d.Net.Eval(ctx, []*tensor.Tensor{x})
	if err != nil {
		return nil, fmt.Errorf("detect: %w", err)
	}
	return d.Decode(out)
}

// Decode decodes a batch of the detector's outputs and applies
// non-maximum suppression.
func (d *Detector) Decode(out *tensor.Tensor) ([][]Detection, error) {
	out = out.AsFloat32()
	if out.Rank() < 2 {
		return nil, fmt.Errorf("detect: output of shape %v has no batch of predictions", out.Shape)
	}
	st, it, maxDet := d.thresholds()
	n := out.Shape[0]
	row := out.Len() / n
	all := make([][]Detection, n)
	for e := 0; e < n; e++ {
		preds, err := d.Config.Decode(out.Shape[1:], out.F[e*row:(e+1)*row])
		if err != nil {
			return nil, err
		}
		var cands []Detection
		for i, p := range preds {
			best := 0
			for k, s := range p.Scores {
				if s > p.Scores[best] {
					best = k
				}
			}
			if s := p.Objectness * p.Scores[best]; s >= st {
				cands = append(cands, Detection{Index: i, Class: best, Label: d.Config.Classes[best], Score: s, Box: p.Box})
			}
		}
		all[e] = NMS(cands, it, maxDet)
	}
	return all, nil
}

// NMS keeps, best score first, each detection that overlaps no kept
// detection of its class by more than iou (intersection over union), up
// to maxDets detections.
func NMS(dets []Detection, iou float64, maxDets int) []Detection {
	s := slices.Clone(dets)
	slices.SortStableFunc(s, func(a, b Detection) int { return cmp.Compare(b.Score, a.Score) })
	var kept []Detection
	for _, c := range s {
		if len(kept) >= maxDets {
			break
		}
		ok := true
		for _, k := range kept {
			if k.Class == c.Class {
				if v, _ := attr.IoU(c.Box, k.Box); v > iou {
					ok = false
					break
				}
			}
		}
		if ok {
			kept = append(kept, c)
		}
	}
	return kept
}

// Explain explains each detection of one image x [1, C, H, W] with a
// method: the image goes into one batch once per detection, each row with
// its detection's box target (attr.BoxScore: the class score, times the
// IoU with the detected box when iou is set), so gradient and perturbation
// methods alike explain all boxes in one call. It returns the method's
// result, one row per detection. Cost: the method's for a batch of
// len(dets) examples.
func (d *Detector) Explain(ctx context.Context, m attr.Method, x *tensor.Tensor, dets []Detection, iou bool) (*attr.Result, error) {
	if err := oneImage(x); err != nil {
		return nil, err
	}
	if len(dets) == 0 {
		return nil, fmt.Errorf("detect: no detection to explain")
	}
	boxes := make([]attr.Box, len(dets))
	for i, dt := range dets {
		boxes[i] = dt.box(iou)
	}
	r, err := m.Attribute(ctx, []*tensor.Tensor{repeat(x, len(dets))}, attr.Options{Target: attr.BoxScore(d.Config, boxes...)})
	if err != nil {
		return nil, fmt.Errorf("detect: %w", err)
	}
	return r, nil
}

// GradCAM explains each detection of one image with Grad-CAM on a layer
// (empty: CAMLayer's, the last convolution, or the last one all levels
// share), as FoxAI's LayerGradCAMObjectDetection:
// the gradient of the detection's score (times its IoU with the detected
// box when iou is set) weighs the layer's channels. It returns the maps
// [len(dets), H, W] in [0, 1] (pytorch-grad-cam's scaling). Cost: one
// forward and backward row per detection.
func (d *Detector) GradCAM(ctx context.Context, x *tensor.Tensor, dets []Detection, layer string, iou bool) (*tensor.Tensor, error) {
	if layer == "" && len(d.Config.Levels) > 0 {
		var err error
		if layer, err = d.CAMLayer(); err != nil {
			return nil, err
		}
	}
	m := &attr.GradCAM{Net: d.Net}
	if layer != "" {
		m.Layers = []string{layer}
	}
	r, err := d.Explain(ctx, m, x, dets, iou)
	if err != nil {
		return nil, err
	}
	return r.Attributions[0], nil
}

func oneImage(x *tensor.Tensor) error {
	if x == nil || x.Rank() != 4 || x.Shape[0] != 1 {
		var s []int
		if x != nil {
			s = x.Shape
		}
		return fmt.Errorf("detect: want one image [1, C, H, W], got shape %v", s)
	}
	return nil
}

// repeat stacks k copies of a one-row tensor.
func repeat(x *tensor.Tensor, k int) *tensor.Tensor {
	shape := append([]int{k}, x.Shape[1:]...)
	r := tensor.New(shape...)
	for i := 0; i < k; i++ {
		copy(r.F[i*x.Len():], x.F)
	}
	return r
}
