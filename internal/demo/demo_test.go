package demo

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemo runs the demo on four images of each shape and checks that the
// model is right and that IntegratedGradients, Saliency, Occlusion and
// GradCAM put most of their positive attribution on the shape (the other
// methods' floors sit a little under what was measured).
func TestDemo(t *testing.T) {
	dir := t.TempDir()
	rep, err := Run(context.Background(), dir, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range rep.Examples {
		if ex.Class != ex.Predicted {
			t.Errorf("a %s was predicted %s", ex.Class, ex.Predicted)
		}
	}
	floors := map[string]float64{"IntegratedGradients": 0.5, "Saliency": 0.5, "Occlusion": 0.5, "GradCAM": 0.5, "GuidedGradCam": 0.5, "InputXGradient": 0.5}
	if rep.ChanceInMask > 0.25 {
		t.Errorf("shapes cover %.2f of the images; the floors assume about 0.15", rep.ChanceInMask)
	}
	for m, f := range floors {
		if got := rep.MeanInMask[m]; got < f {
			t.Errorf("%s: %.2f of the positive attribution on the shape, floor %.2f", m, got, f)
		}
		t.Logf("%s: %.2f on the shape", m, rep.MeanInMask[m])
	}
	page, err := os.ReadFile(filepath.Join(dir, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range rep.Examples {
		if !strings.Contains(string(page), `src="`+ex.Figure+`"`) {
			t.Errorf("index.html does not show %s", ex.Figure)
		}
	}
	for _, name := range []string{rep.Examples[0].Figure, rep.Examples[0].Vector, rep.Examples[0].Results[0].Array} {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.Size() == 0 {
			t.Errorf("%s missing or empty", name)
		}
	}
}
