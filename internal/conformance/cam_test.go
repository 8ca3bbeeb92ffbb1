package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/tensor"
)

// camRunners returns the runners of the CAM group, pytorch-grad-cam's
// classes.
func camRunners() map[string]runner {
	out := map[string]runner{}
	for _, name := range []string{"GradCAM", "HiResCAM", "GradCAMElementWise", "GradCAMPlusPlus", "XGradCAM",
		"LayerCAM", "EigenCAM", "EigenGradCAM", "ScoreCAM", "AblationCAM", "FullGrad"} {
		out["pytorch_grad_cam."+name] = runCAM
	}
	return out
}

// buildCAM makes the CAM method of a case, its inputs and options.
func buildCAM(c *Case, m *engine.Model) (attr.Method, []*tensor.Tensor, attr.Options, bool, error) {
	nt, in, o, err := setup(c, m)
	if err != nil {
		return nil, nil, o, false, err
	}
	var targets []int
	if err := json.Unmarshal(c.Params["targets"], &targets); err != nil {
		return nil, nil, o, false, fmt.Errorf("params.targets: %w", err)
	}
	o.Target = attr.Classes(targets...)
	var ctor struct {
		Layers []string `json:"target_layers"`
	}
	if err := json.Unmarshal(c.Constructor, &ctor); err != nil {
		return nil, nil, o, false, fmt.Errorf("constructor: %w", err)
	}
	smooth, err := c.Bool("eigen_smooth", false)
	if err != nil {
		return nil, nil, o, false, err
	}
	bs, err := c.Int("batch_size", 0)
	if err != nil {
		return nil, nil, o, false, err
	}
	ratio, err := c.Float("ratio_channels_to_ablate", 1)
	if err != nil {
		return nil, nil, o, false, err
	}
	l := ctor.Layers
	var meth attr.Method
	eigen := smooth
	switch strings.TrimPrefix(c.Algorithm, "pytorch_grad_cam.") {
	case "GradCAM":
		meth = &attr.GradCAM{Net: nt, Layers: l, EigenSmooth: smooth}
	case "HiResCAM":
		meth = &attr.HiResCAM{Net: nt, Layers: l, EigenSmooth: smooth}
	case "GradCAMElementWise":
		meth = &attr.GradCAMElementWise{Net: nt, Layers: l, EigenSmooth: smooth}
	case "GradCAMPlusPlus":
		meth = &attr.GradCAMPlusPlus{Net: nt, Layers: l, EigenSmooth: smooth}
	case "XGradCAM":
		meth = &attr.XGradCAM{Net: nt, Layers: l, EigenSmooth: smooth}
	case "LayerCAM":
		meth = &attr.LayerCAM{Net: nt, Layers: l, EigenSmooth: smooth}
	case "EigenCAM":
		meth, eigen = &attr.EigenCAM{Net: nt, Layers: l}, true
	case "EigenGradCAM":
		meth, eigen = &attr.EigenGradCAM{Net: nt, Layers: l}, true
	case "ScoreCAM":
		meth = &attr.ScoreCAM{Net: nt, Layers: l, BatchSize: bs, EigenSmooth: smooth}
	case "AblationCAM":
		meth = &attr.AblationCAM{Net: nt, Layers: l, BatchSize: bs, RatioChannelsToAblate: ratio, EigenSmooth: smooth}
	case "FullGrad":
		fg := &attr.FullGrad{Net: nt}
		if err := checkBiasLayers(c, fg); err != nil {
			return nil, nil, o, false, err
		}
		meth = fg
	default:
		return nil, nil, o, false, fmt.Errorf("%w: %s", errNotImplemented, c.Algorithm)
	}
	return meth, in, o, eigen, nil
}

// runCAM checks a CAM case: the cam and the raw layer map (FullGrad: the
// unscaled sum). The principal component's sign is arbitrary, so for the
// projection methods each example's map takes the sign of the recorded
// one before the cam is scaled.
func runCAM(ctx context.Context, c *Case, m *engine.Model) error {
	meth, in, o, eigen, err := buildCAM(c, m)
	if err != nil {
		return err
	}
	r, err := meth.Attribute(ctx, in, o)
	if err != nil {
		return err
	}
	var exp map[string]json.RawMessage
	if err := json.Unmarshal(c.Expected, &exp); err != nil {
		return fmt.Errorf("expected: %w", err)
	}
	field := "cam_layer"
	if _, ok := exp[field]; !ok {
		field = "cam_unscaled"
	}
	want, err := c.Tensor(exp[field])
	if err != nil {
		return fmt.Errorf("expected.%s: %w", field, err)
	}
	if len(r.Maps) != 1 {
		return fmt.Errorf("%d maps, want 1", len(r.Maps))
	}
	cam := r.Attributions[0]
	if eigen {
		got := r.Maps[0]
		n := got.Shape[0]
		row := got.Len() / n
		for e := 0; e < n; e++ {
			var dot float64
			for i := e * row; i < (e+1)*row; i++ {
				dot += float64(got.F[i]) * float64(want.F[i])
			}
			if dot < 0 {
				for i := e * row; i < (e+1)*row; i++ {
					got.F[i] = -got.F[i]
				}
			}
		}
		if cam, err = attr.ScaleCAM(r.Maps, cam.Shape[1], cam.Shape[2]); err != nil {
			return err
		}
	}
	tol, err := c.ExactTols(field)
	if err != nil {
		return err
	}
	if err := Compare(r.Maps[0], want, tol[0]); err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	wantCam, err := c.Tensor(exp["cam"])
	if err != nil {
		return fmt.Errorf("expected.cam: %w", err)
	}
	if tol, err = c.ExactTols("cam"); err != nil {
		return err
	}
	if err := Compare(cam, wantCam, tol[0]); err != nil {
		return fmt.Errorf("cam: %w", err)
	}
	return nil
}

// checkBiasLayers compares FullGrad's layers and biases with the case's
// fullgrad_layers.
func checkBiasLayers(c *Case, fg *attr.FullGrad) error {
	var rec []struct {
		Module string          `json:"module"`
		Tensor string          `json:"onnx_tensor"`
		Bias   json.RawMessage `json:"bias"`
	}
	if err := json.Unmarshal(c.FullGradLayers, &rec); err != nil {
		return fmt.Errorf("fullgrad_layers: %w", err)
	}
	got, err := fg.BiasLayers()
	if err != nil {
		return err
	}
	if len(got) != len(rec) {
		return fmt.Errorf("FullGrad uses %d layers, the case %d", len(got), len(rec))
	}
	for i, l := range rec {
		if got[i].Tensor != l.Tensor {
			return fmt.Errorf("FullGrad layer %d is %q, the case's %q (%s)", i, got[i].Tensor, l.Tensor, l.Module)
		}
		want, err := c.Tensor(l.Bias)
		if err != nil {
			return fmt.Errorf("fullgrad_layers[%d].bias: %w", i, err)
		}
		b, _ := tensor.FromFloat32(got[i].Bias, len(got[i].Bias))
		if err := Compare(b, want, Tol{ATol: 1e-6, RTol: 1e-5}); err != nil {
			return fmt.Errorf("bias of %s: %w", l.Module, err)
		}
	}
	return nil
}
