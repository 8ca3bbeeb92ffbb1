package methods

import (
	"context"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/internal/demo"
	"github.com/loupe-ml/loupe/tensor"
)

// Every CAM method runs by name on the demo model, with one and two target
// layers and with its parameters, and returns a map [N, 1, H, W] in [0, 1].
func TestCAMTable(t *testing.T) {
	m, err := demo.Model()
	if err != nil {
		t.Fatal(err)
	}
	nt, err := attr.NewNet(m)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := demo.Draw(0, 1)
	b, _ := demo.Draw(1, 2)
	x := tensor.New(2, 3, demo.Size, demo.Size)
	copy(x.F, a.F)
	copy(x.F[a.Len():], b.F)
	names := []string{"GradCAM", "HiResCAM", "GradCAMElementWise", "GradCAMPlusPlus", "XGradCAM", "LayerCAM",
		"EigenCAM", "EigenGradCAM", "ScoreCAM", "AblationCAM", "FullGrad"}
	for _, name := range names {
		spec, ok := Lookup(name)
		if !ok {
			t.Fatalf("%s is not in the table", name)
		}
		var given []string
		for _, p := range spec.Params {
			switch p.Name {
			case "eigen_smooth":
				given = append(given, "eigen_smooth=true")
			case "batch_size":
				given = append(given, "batch_size=5")
			}
		}
		layers := []string{"", "conv3", "conv2, conv3"}
		if !spec.Layer {
			layers = []string{""}
		}
		for _, layer := range layers {
			p, err := Resolve(name, spec, given)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			meth, err := spec.Build(nt, layer, p)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			r, err := meth.Attribute(context.Background(), []*tensor.Tensor{x}, attr.Options{Target: attr.Classes(0, 1)})
			if err != nil {
				t.Errorf("%s %q: %v", name, layer, err)
				continue
			}
			cam := r.Attributions[0]
			if !tensor.SameShape(cam.Shape, []int{2, 1, demo.Size, demo.Size}) {
				t.Errorf("%s %q: map of shape %v", name, layer, cam.Shape)
				continue
			}
			lo, hi := cam.F[0], cam.F[0]
			for _, v := range cam.F {
				lo, hi = min(lo, v), max(hi, v)
			}
			if lo < 0 || hi > 1 || hi < 0.99 {
				t.Errorf("%s %q: map in [%g, %g], want [0, 1] reaching 1", name, layer, lo, hi)
			}
			if want := max(1, len(strings.Split(layer, ","))); name != "FullGrad" && len(r.Maps) != want {
				t.Errorf("%s %q: %d raw maps, want %d", name, layer, len(r.Maps), want)
			}
		}
	}
	// A layer that does not exist is an error that names it.
	spec, _ := Lookup("GradCAM")
	p, _ := Resolve("GradCAM", spec, nil)
	meth, _ := spec.Build(nt, "conv9", p)
	if _, err := meth.Attribute(context.Background(), []*tensor.Tensor{x}, attr.Options{Target: attr.Classes(0, 1)}); err == nil || !strings.Contains(err.Error(), "conv9") {
		t.Errorf("unknown layer: %v", err)
	}
}
