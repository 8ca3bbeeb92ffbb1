package viz

import (
	"image"
	"math"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/tensor"
)

// TestHostileInput: bad arguments to viz's public functions are errors
// (or, where a function returns none, a bounded picture), never panics or
// unbounded allocations.
func TestHostileInput(t *testing.T) {
	img := tensor.New(3, 4, 4)
	v := make([]float64, 16)
	for name, err := range map[string]error{
		"Blend nil image":     second(Blend(nil, v, 4, 4, Positive, 0.5, 1)),
		"Blend short map":     second(Blend(img, v[:3], 4, 4, Positive, 0.5, 1)),
		"Masked short map":    second(Masked(img, v[:3], 4, 4, Positive, 1)),
		"AlphaScaling nil":    second(AlphaScaling(nil, v, 4, 4, Positive, 1)),
		"Original nil":        second(Original(nil, 1)),
		"GridSVG nil picture": second(GridSVG([]View{{Title: "x"}}, 1)),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, _, _, err := Map2D(nil, false); err == nil {
		t.Error("Map2D(nil): accepted")
	}
	for name, pic := range map[string]*image.RGBA{
		"HeatMap huge scale":   HeatMap(v, 4, 4, Positive, 1<<30),
		"HeatMap huge map":     HeatMap(v, 1<<40, 1<<40, Positive, 1),
		"HeatMap wrong length": HeatMap(v[:5], 4, 4, Positive, 1),
		"ColorBar huge":        ColorBar(Positive, 1<<30, 1<<30),
	} {
		if b := pic.Bounds(); b.Dx()*b.Dy() > MaxPixels {
			t.Errorf("%s: %v, over MaxPixels", name, b)
		}
	}
	if b := HeatMap(v, 4, 4, Positive, 3).Bounds(); b.Dx() != 12 || b.Dy() != 12 {
		t.Errorf("HeatMap scale 3 of 4x4: %v", b)
	}
	svg := LinePlotSVG("t", []Series{{X: []float64{0, 1, 2}, Y: []float64{1, math.NaN()}}}, 100, 80)
	if !strings.Contains(svg, "<svg") {
		t.Error("LinePlotSVG with ragged series drew nothing")
	}
}

func second[T any](_ T, err error) error { return err }
