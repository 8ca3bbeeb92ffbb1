package viz

import (
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/tensor"
)

// A white object under a blended heat map stays visible: cells with
// attribution are tinted with the map's color, cells without show the
// (darkened) gray copy, and neither is white.
func TestBlendPaleObject(t *testing.T) {
	const n = 8
	img := tensor.New(3, n, n)
	a := tensor.New(n, n)
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			if x >= 4 { // the right half is a white object
				for k := 0; k < 3; k++ {
					img.F[(k*n+y)*n+x] = 1
				}
			}
			if x >= 6 { // with attribution on its right quarter
				a.F[y*n+x] = 1
			}
		}
	}
	fig, err := ImageAttrMultiple(a, img, []ImageView{{Method: MethodBlendedHeatMap, Sign: Positive}}, ImageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pic := fig.Panels[0].Picture
	plain, tinted, dark := pic.RGBAAt(4, 0), pic.RGBAAt(7, 0), pic.RGBAAt(0, 0)
	if plain.R > 200 || plain.R != plain.G || plain.R <= dark.R {
		t.Errorf("white object without attribution drawn %v (background %v): want a gray lighter than the background, not white", plain, dark)
	}
	if !(tinted.G > tinted.R+40) {
		t.Errorf("attributed cells of the white object drawn %v: want clearly green", tinted)
	}
}

// An empty map says so in its title and gets no color bar; masked and
// alpha-scaled views get none either (their colors are the picture's).
func TestEmptyMapsAndBars(t *testing.T) {
	img := tensor.New(3, 4, 4)
	for i := range img.F {
		img.F[i] = 0.5
	}
	neg := tensor.New(4, 4)
	for i := range neg.F {
		neg.F[i] = -float32(i + 1)
	}
	views := []ImageView{
		{Method: MethodHeatMap, Sign: Positive, Title: "heat"},
		{Method: MethodHeatMap, Sign: Negative, Title: "neg"},
		{Method: MethodMaskedImage, Sign: Negative, Title: "masked"},
		{Method: MethodAlphaScaling, Sign: AbsoluteValue, Title: "alpha"},
		{Method: MethodBlendedHeatMap, Sign: All, Title: "blend"},
	}
	fig, err := ImageAttrMultiple(neg, img, views, ImageOptions{ColorBar: true})
	if err != nil {
		t.Fatal(err)
	}
	p := fig.Panels
	if !strings.Contains(p[0].Title, "no positive attribution") || p[0].Bar != nil {
		t.Errorf("empty positive view: title %q, bar %v", p[0].Title, p[0].Bar != nil)
	}
	if strings.Contains(p[1].Title, "no ") || p[1].Bar == nil || p[1].BarRange != [2]float64{0, -1} {
		t.Errorf("negative view of a negative map: title %q, bar %v", p[1].Title, p[1].Bar != nil)
	}
	if p[2].Bar != nil || p[3].Bar != nil {
		t.Error("masked or alpha-scaled view with a color bar")
	}
	if p[4].Bar == nil || p[4].BarRange != [2]float64{-1, 1} {
		t.Errorf("blended view of sign all: bar %v %v", p[4].Bar != nil, p[4].BarRange)
	}
	if !IsEmpty(Normalize([]float64{0, 0}, All, 2)) || IsEmpty(Normalize([]float64{0, 1}, All, 2)) {
		t.Error("IsEmpty")
	}
}
