package explain

import (
	"context"
	"errors"
	"fmt"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/detect"
	"github.com/loupe-ml/loupe/internal/methods"
	"github.com/loupe-ml/loupe/tensor"
)

// RunDetection answers a request on one detection of a detector's image x
// ([1, C, H, W]): it resolves the method and its parameters as Run does,
// builds the method on the detector's network and attributes with the
// detection's box as the target (attr.BoxScore: its class score, times
// the IoU of its box with the detected box when iou is set). The request
// names no target (the box is the target); its errors, and the method's
// build errors, are RequestErrors. Result.Targets holds the detection's
// class. Cost: the method's on one example.
func RunDetection(ctx context.Context, d *detect.Detector, x *tensor.Tensor, det detect.Detection, iou bool, r Request) (*Result, error) {
	var opts []methods.Option
	if r.NoFiles {
		opts = append(opts, methods.NoFiles())
	}
	spec, vals, err := resolve(r.Method, r.Params, opts...)
	if err != nil {
		return nil, err
	}
	switch {
	case d == nil || d.Net == nil:
		return nil, &RequestError{errors.New("no detector to explain")}
	case !r.Target.IsZero():
		return nil, &RequestError{fmt.Errorf("target %s: a detection's target is its box", r.Target)}
	case x == nil || x.Rank() != 4 || x.Shape[0] != 1:
		return nil, &RequestError{fmt.Errorf("want one image [1, C, H, W], got shape %v", shapesOf([]*tensor.Tensor{x}))}
	case det.Class < 0 || det.Class >= len(d.Config.Classes):
		return nil, &RequestError{fmt.Errorf("detection of class %d; the detector has %d classes", det.Class, len(d.Config.Classes))}
	}
	inputs := []*tensor.Tensor{x}
	if err := checkShapes(d.Net, inputs); err != nil {
		return nil, err
	}
	m, err := spec.Build(d.Net, r.Layer, vals)
	if err != nil {
		return nil, &RequestError{err}
	}
	o := attr.Options{Target: det.Target(d.Config, iou), Progress: r.Progress, Delta: r.Delta}
	if o.Baselines, err = baselines(spec, inputs, r); err != nil {
		return nil, err
	}
	a, err := m.Attribute(ctx, inputs, o)
	if err != nil {
		return nil, err
	}
	res := &Result{Attributions: a.Attributions, Targets: [][]int{{det.Class}}, Params: vals}
	if r.Delta {
		res.Delta = a.Delta
	}
	return res, nil
}
