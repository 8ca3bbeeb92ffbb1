package methods

import (
	"context"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/internal/demo"
	"github.com/loupe-ml/loupe/tensor"
)

// The CAM extras by name (aug_smooth, AblationCAM's
// ratio_channels_to_ablate) give what attr gives when set directly, and
// change the map; out-of-range ratios are refused before anything runs.
func TestCAMExtras(t *testing.T) {
	m, err := demo.Model()
	if err != nil {
		t.Fatal(err)
	}
	nt, err := attr.NewNet(m)
	if err != nil {
		t.Fatal(err)
	}
	img, _ := demo.Draw(2, 5)
	x, _ := img.Reshape(1, 3, demo.Size, demo.Size)
	ctx := context.Background()
	o := attr.Options{Target: attr.Class(2)}
	byName := func(name string, params ...string) *tensor.Tensor {
		t.Helper()
		spec, ok := Lookup(name)
		if !ok {
			t.Fatalf("no %s", name)
		}
		p, err := Resolve(name, spec, params)
		if err != nil {
			t.Fatalf("%s %v: %v", name, params, err)
		}
		meth, err := spec.Build(nt, "conv3", p)
		if err != nil {
			t.Fatalf("%s %v: %v", name, params, err)
		}
		r, err := meth.Attribute(ctx, []*tensor.Tensor{x}, o)
		if err != nil {
			t.Fatalf("%s %v: %v", name, params, err)
		}
		return r.Attributions[0]
	}
	direct := func(meth attr.Method) *tensor.Tensor {
		t.Helper()
		r, err := meth.Attribute(ctx, []*tensor.Tensor{x}, o)
		if err != nil {
			t.Fatal(err)
		}
		return r.Attributions[0]
	}
	same := func(what string, a, b *tensor.Tensor, want bool) {
		t.Helper()
		if a.Len() != b.Len() {
			t.Fatalf("%s: %d values and %d", what, a.Len(), b.Len())
		}
		eq := true
		for i := range a.F {
			if d := a.F[i] - b.F[i]; d > 1e-6 || d < -1e-6 {
				eq = false
				break
			}
		}
		if eq != want {
			t.Errorf("%s: equal %v, want %v", what, eq, want)
		}
	}
	layers := []string{"conv3"}
	same("GradCAM aug_smooth=true vs attr.AugSmooth", byName("GradCAM", "aug_smooth=true"), direct(&attr.AugSmooth{CAM: &attr.GradCAM{Net: nt, Layers: layers}}), true)
	same("GradCAM aug_smooth=true vs false", byName("GradCAM", "aug_smooth=true"), byName("GradCAM"), false)
	same("EigenCAM aug_smooth=true vs attr.AugSmooth", byName("EigenCAM", "aug_smooth=true"), direct(&attr.AugSmooth{CAM: &attr.EigenCAM{Net: nt, Layers: layers}}), true)
	same("AblationCAM ratio 0.25 vs attr", byName("AblationCAM", "ratio_channels_to_ablate=0.25"), direct(&attr.AblationCAM{Net: nt, Layers: layers, RatioChannelsToAblate: 0.25}), true)
	same("AblationCAM ratio 0.25 vs 1", byName("AblationCAM", "ratio_channels_to_ablate=0.25"), byName("AblationCAM"), false)
	for _, bad := range []string{"ratio_channels_to_ablate=1.5", "ratio_channels_to_ablate=-0.1", "ratio_channels_to_ablate=NaN"} {
		spec, _ := Lookup("AblationCAM")
		if _, err := Resolve("AblationCAM", spec, []string{bad}); err == nil || !strings.Contains(err.Error(), "ratio_channels_to_ablate") {
			t.Errorf("%s: %v, want an error naming it", bad, err)
		}
	}
	for _, name := range []string{"GradCAM", "HiResCAM", "GradCAMElementWise", "GradCAMPlusPlus", "XGradCAM", "LayerCAM",
		"EigenCAM", "EigenGradCAM", "ScoreCAM", "AblationCAM", "FullGrad"} {
		spec, _ := Lookup(name)
		if !hasParam(spec, "aug_smooth") {
			t.Errorf("%s has no aug_smooth", name)
		}
	}
	if spec, _ := Lookup("GradCAM"); hasParam(spec, "ratio_channels_to_ablate") {
		t.Error("GradCAM takes ratio_channels_to_ablate")
	}
}

func hasParam(s Spec, name string) bool {
	for _, p := range s.Params {
		if p.Name == name {
			return true
		}
	}
	return false
}
