package explain

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/internal/demo"
)

// RunDetection explains one box as detect does with the method built by
// hand, with and without the IoU factor, and refuses a target and bad
// parameters as RequestErrors.
func TestRunDetection(t *testing.T) {
	d, err := demo.Detector()
	if err != nil {
		t.Fatal(err)
	}
	img, _ := demo.Scene(9000)
	x, _ := img.Reshape(1, 3, demo.SceneSize, demo.SceneSize)
	ctx := context.Background()
	all, err := d.Detect(ctx, x)
	if err != nil || len(all[0]) < 2 {
		t.Fatalf("detections: %v %v", all, err)
	}
	det := all[0][1]
	for _, iou := range []bool{false, true} {
		got, err := RunDetection(ctx, d, x, det, iou, Request{Method: "Saliency", Params: []string{"abs=false"}})
		if err != nil {
			t.Fatal(err)
		}
		want, err := d.Explain(ctx, &attr.Saliency{Net: d.Net, Signed: true}, x, all[0][1:2], iou)
		if err != nil {
			t.Fatal(err)
		}
		g, w := got.Attributions[0], want.Attributions[0]
		nonzero := false
		for i := range w.F {
			if math.Abs(float64(g.F[i]-w.F[i])) > 1e-6 {
				t.Fatalf("iou %v: value %d is %g, want %g", iou, i, g.F[i], w.F[i])
			}
			nonzero = nonzero || w.F[i] != 0
		}
		if !nonzero || len(got.Targets) != 1 || got.Targets[0][0] != det.Class {
			t.Errorf("iou %v: all zero %v, targets %v", iou, !nonzero, got.Targets)
		}
	}
	for what, r := range map[string]Request{
		"a target":       {Method: "Saliency", Target: Class(0)},
		"a bad n_steps":  {Method: "IntegratedGradients", Params: []string{"n_steps=0"}},
		"an unknown one": {Method: "Nope"},
		"a file":         {Method: "FeatureAblation", Params: []string{"feature_mask=/etc/passwd"}, NoFiles: true},
	} {
		var re *RequestError
		if _, err := RunDetection(ctx, d, x, det, false, r); !errors.As(err, &re) {
			t.Errorf("%s: %v, want a RequestError", what, err)
		}
	}
	bad := det
	bad.Class = 7
	if _, err := RunDetection(ctx, d, x, bad, false, Request{Method: "Saliency"}); err == nil {
		t.Error("a class the detector does not have: no error")
	}
}
