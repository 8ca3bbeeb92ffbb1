package viz

import (
	"image"
	"image/color"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/tensor"
)

func TestNormalizeAndHeatMap(t *testing.T) {
	// A 4x4 map, strongest at (1,2), negative at (3,0).
	a := tensor.New(2, 4, 4)
	a.F[1*4+2] = 3
	a.F[16+1*4+2] = 1 // channel sums to 4
	a.F[3*4+0] = -2
	v, h, w, err := Map2D(a, false)
	if err != nil || h != 4 || w != 4 || v[6] != 4 || v[12] != -2 {
		t.Fatalf("Map2D: %v %d %d %v", v, h, w, err)
	}
	pos := Normalize(v, Positive, 2)
	if pos[6] != 1 || pos[12] != 0 {
		t.Errorf("positive: %v", pos)
	}
	all := Normalize(v, All, 0)
	if all[6] != 1 || all[12] != -0.5 {
		t.Errorf("all: %v", all)
	}
	img := HeatMap(pos, h, w, Positive, 3)
	if b := img.Bounds(); b.Dx() != 12 || b.Dy() != 12 {
		t.Fatalf("size %v", b)
	}
	strong := img.RGBAAt(2*3+1, 1*3+1) // inside cell (1,2)
	weak := img.RGBAAt(0, 0)
	// Matplotlib's Greens: #f7fcf5 at 0, #00441b at 1.
	if strong != (color.RGBA{0, 68, 27, 255}) || weak != (color.RGBA{247, 252, 245, 255}) {
		t.Errorf("strongest cell %v, empty cell %v: want Greens' ends", strong, weak)
	}
	if _, err := ParseSign("sideways"); err == nil {
		t.Error("bad sign: no error")
	}
}

func TestLinePlotSVG(t *testing.T) {
	svg := LinePlotSVG("deletion <curve>", []Series{{Name: "IG", X: []float64{0, 0.5, 1}, Y: []float64{2, 1, 0}}}, 300, 200)
	for _, want := range []string{"<svg", "polyline", "IG", "deletion &lt;curve&gt;"} {
		if !strings.Contains(svg, want) {
			t.Errorf("plot lacks %q", want)
		}
	}
}

func TestMaskedAlphaAndColorBar(t *testing.T) {
	img := tensor.New(3, 2, 2)
	for i := range img.F {
		img.F[i] = 1
	}
	v := []float64{1, 0, 0.5, 0}
	m, err := Masked(img, v, 2, 2, Positive, 1)
	if err != nil {
		t.Fatal(err)
	}
	if c := m.RGBAAt(0, 0); c.R != 255 {
		t.Errorf("fully attributed pixel %v, want white", c)
	}
	if c := m.RGBAAt(1, 0); c.R != 0 {
		t.Errorf("unattributed pixel %v, want black", c)
	}
	a, _ := AlphaScaling(img, v, 2, 2, Positive, 1)
	if c := a.RGBAAt(0, 1); c.A != 127 {
		t.Errorf("half-attributed pixel alpha %d, want 127", c.A)
	}
	for _, f := range []func(*tensor.Tensor, []float64, int, int, Sign, int) (*image.RGBA, error){Masked, AlphaScaling} {
		if _, err := f(img, v, 2, 2, All, 1); err == nil {
			t.Error("sign all: no error")
		}
	}
	bar := ColorBar(All, 4, 11)
	if top, mid := bar.RGBAAt(0, 0), bar.RGBAAt(0, 5); top.G >= mid.G || mid != (color.RGBA{255, 255, 255, 255}) {
		t.Errorf("color bar top %v, middle %v: want green over white", top, mid)
	}
}

func TestTextGridTimeSeries(t *testing.T) {
	h := TextHTML([]TextRecord{{Tokens: []string{"good", "<pad>"}, Attributions: []float64{0.8, -0.2}, TrueLabel: "pos", PredictedLabel: "pos", PredictedProb: 0.9}})
	for _, want := range []string{"good", "&lt;pad&gt;", "rgb(", "0.90"} {
		if !strings.Contains(h, want) {
			t.Errorf("text HTML lacks %q", want)
		}
	}
	img := HeatMap([]float64{1, 0, 0, 1}, 2, 2, Positive, 2)
	g, err := GridSVG([]View{{"heat map", img}, {"again", img}, {"third", img}}, 2)
	if err != nil || strings.Count(g, "<image") != 3 || !strings.Contains(g, "heat map") {
		t.Errorf("grid: %v", err)
	}
	data := [][]float64{{0, 1, 0, 1}, {1, 1, 0, 0}}
	at := [][]float64{{0, 1, 0, -1}, {0, 0, 0.5, 0}}
	for _, mode := range []string{OverlayIndividual, OverlayCombined, ColoredGraph} {
		s, err := TimeSeriesSVG(data, at, mode, 200, 100)
		if err != nil || !strings.Contains(s, "<line") {
			t.Errorf("%s: %v", mode, err)
		}
	}
	if _, err := TimeSeriesSVG(data, at[:1], OverlayCombined, 200, 100); err == nil {
		t.Error("mismatched channels: no error")
	}
}
