package demo

import (
	"context"
	"image"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/viz"
)

// TestDetectionDemo runs the detection demo on a few scenes: the detector
// finds the shapes, and the per-box maps point at their objects.
func TestDetectionDemo(t *testing.T) {
	dir := t.TempDir()
	rep, err := RunDetection(context.Background(), dir, DetectionOptions{Scenes: 6, FirstSeed: 1, Masks: 300, Figures: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d of %d objects found, %d false; pointing %v, chance %.2f", rep.Found, rep.Objects, rep.False, rep.Pointing, rep.Chance)
	if rep.Found < rep.Objects*3/4 || rep.False > 2 {
		t.Errorf("%d of %d objects found with %d false detections", rep.Found, rep.Objects, rep.False)
	}
	// Floors under what was measured on these scenes (GradCAM's map
	// often peaks on another object: see docs/detection.md).
	floors := map[string]float64{"GradCAM": 0.4, "HiResCAM": 0.85, "Saliency": 0.6, "D-RISE": 0.85}
	for _, m := range DetectionMethods {
		if rep.Pointing[m] < floors[m] {
			t.Errorf("%s points at its object for %.2f of the boxes, floor %.2f", m, rep.Pointing[m], floors[m])
		}
	}
	page, err := os.ReadFile(filepath.Join(dir, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range rep.Scenes {
		if !strings.Contains(string(page), `src="`+sc.Figure+`"`) {
			t.Errorf("index.html does not show %s", sc.Figure)
		}
		if st, err := os.Stat(filepath.Join(dir, sc.Figure)); err != nil || st.Size() == 0 {
			t.Errorf("%s missing or empty", sc.Figure)
		}
	}
}

// TestDetectionPointingRates measures the pointing game per box on 200
// held-out scenes (seeds 10000 to 10199), the numbers in
// docs/detection.md. It takes a few minutes: LOUPE_MEASURE=1 runs it.
func TestDetectionPointingRates(t *testing.T) {
	if os.Getenv("LOUPE_MEASURE") == "" {
		t.Skip("LOUPE_MEASURE=1 measures the pointing game on 200 scenes (minutes)")
	}
	rep, err := RunDetection(context.Background(), "", DetectionOptions{Scenes: 200, FirstSeed: 10000}, nil)
	if err != nil {
		t.Fatal(err)
	}
	matched := 0
	for _, s := range rep.Scenes {
		for _, b := range s.Boxes {
			if b.Object >= 0 {
				matched++
			}
		}
	}
	t.Logf("%d scenes: %d of %d objects found, %d false detections; %d matched boxes", len(rep.Scenes), rep.Found, rep.Objects, rep.False, matched)
	for _, m := range rep.Methods {
		t.Logf("pointing game %-9s %.3f", m, rep.Pointing[m])
	}
	t.Logf("chance (mean box area share) %.3f", rep.Chance)
}

// DrawBoxes outlines a box 2 pixels wide at the picture's scale, leaves
// its inside alone, clips what falls outside and skips boxes that are not
// numbers.
func TestDrawBoxes(t *testing.T) {
	pic := image.NewRGBA(image.Rect(0, 0, 40, 40))
	red := color.RGBA{255, 0, 0, 255}
	viz.DrawBoxes(pic, []viz.BoxMark{
		{Box: [4]float64{2, 3, 8, 9}, Color: red},
		{Box: [4]float64{15, -5, 30, 5}, Color: red, Label: "clipped"},
		{Box: [4]float64{math.NaN(), 0, 1, 1}, Color: red},
	}, 2)
	for _, p := range []image.Point{{4, 6}, {5, 7}, {15, 10}, {4, 17}, {10, 6}} {
		if pic.RGBAAt(p.X, p.Y) != red {
			t.Errorf("outline pixel %v not drawn", p)
		}
	}
	for _, p := range []image.Point{{8, 10}, {10, 12}, {3, 6}, {16, 18}} {
		if pic.RGBAAt(p.X, p.Y) == red {
			t.Errorf("pixel %v, off the outline, was drawn", p)
		}
	}
	// The box cut by the top edge: its bottom and left sides are drawn
	// (its label goes inside, rows 0 to 4), not the rest of its inside.
	for _, p := range []image.Point{{35, 9}, {31, 7}} {
		if pic.RGBAAt(p.X, p.Y) != red {
			t.Errorf("clipped box: pixel %v not drawn", p)
		}
	}
	if pic.RGBAAt(35, 7) == red {
		t.Error("clipped box: its inside was drawn")
	}
}
