package methods

import (
	"context"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/internal/demo"
	"github.com/loupe-ml/loupe/tensor"
)

// Every method builds from its defaults and explains the demo model.
func TestTableRuns(t *testing.T) {
	m, err := demo.Model()
	if err != nil {
		t.Fatal(err)
	}
	nt, err := attr.NewNet(m)
	if err != nil {
		t.Fatal(err)
	}
	img, _ := demo.Draw(0, 1)
	x, _ := img.Reshape(1, 3, demo.Size, demo.Size)
	for name, spec := range Table() {
		var given []string
		if name == "Occlusion" {
			given = []string{"sliding_window_shapes=3,8,8", "strides=3,8,8"}
		}
		if name == "ShapleyValueSampling" || name == "FeatureAblation" {
			continue // one model call per element: slow for a table check, covered in attr
		}
		p, err := Resolve(name, spec, given)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		meth, err := spec.Build(nt, "", p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		o := attr.Options{Target: attr.Class(0)}
		if name == "GradientShap" {
			o.Baselines = []*tensor.Tensor{tensor.New(2, 3, demo.Size, demo.Size)} // Captum requires a distribution
		}
		r, err := meth.Attribute(context.Background(), []*tensor.Tensor{x}, o)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if a := r.Attributions[0]; a == nil || a.Shape[0] != 1 {
			t.Errorf("%s: attributions %v", name, a)
		}
	}
}

func TestResolveErrors(t *testing.T) {
	tab := Table()
	if _, err := Resolve("Saliency", tab["Saliency"], []string{"n_steps=3"}); err == nil || !strings.Contains(err.Error(), "has no parameter") {
		t.Errorf("unknown parameter: %v", err)
	}
	if _, err := Resolve("IntegratedGradients", tab["IntegratedGradients"], []string{"n_steps"}); err == nil || !strings.Contains(err.Error(), "name=value") {
		t.Errorf("no value: %v", err)
	}
	p, err := Resolve("IntegratedGradients", tab["IntegratedGradients"], []string{"n_steps=abc"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tab["IntegratedGradients"].Build(nil, "", p); err == nil || !strings.Contains(err.Error(), "n_steps") {
		t.Errorf("bad integer: %v", err)
	}
	if _, err := tab["Occlusion"].Build(nil, "", Values{}); err == nil || !strings.Contains(err.Error(), "sliding_window_shapes") {
		t.Errorf("Occlusion without a window: %v", err)
	}
}
