package explain

import (
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/tensor"
	"github.com/loupe-ml/loupe/viz"
)

func TestPictureAndFit(t *testing.T) {
	x := tensor.New(2, 3, 4, 4)
	for i := range x.F {
		x.F[i] = float32(i)
	}
	img := Picture(x, 1)
	if img == nil || !tensor.SameShape(img.Shape, []int{3, 4, 4}) || img.F[0] != 48 {
		t.Fatalf("example 1: %v", img)
	}
	if Picture(tensor.New(2, 4, 4, 4), 0) != nil || Picture(x, 2) != nil || Picture(tensor.New(2, 16), 0) != nil {
		t.Error("four channels, a missing example or a vector gave a picture")
	}
	if e := Example(tensor.New(2, 16), 1); e == nil || !tensor.SameShape(e.Shape, []int{16}) {
		t.Errorf("example of a [2, 16] batch: %v", e)
	}
	// A 2x2 map is upsampled to the 4x4 image; a constant map stays constant.
	a := tensor.New(1, 2, 2)
	for i := range a.F {
		a.F[i] = 5
	}
	got, im, err := Fit(a, img)
	if err != nil || im != img || !tensor.SameShape(got.Shape, []int{1, 4, 4}) || got.F[7] != 5 {
		t.Errorf("fit: %v %v %v", got, im, err)
	}
	// Same size: unchanged; larger than the image: no image to draw on.
	same := tensor.New(3, 4, 4)
	if got, im, _ := Fit(same, img); got != same || im != img {
		t.Error("a map of the image's size was changed")
	}
	if got, im, _ := Fit(tensor.New(1, 8, 8), img); im != nil || got.Shape[1] != 8 {
		t.Error("a larger map was fitted")
	}
}

func titles(f *viz.Figure) string {
	var s []string
	for _, p := range f.Panels {
		s = append(s, p.Title)
	}
	return strings.Join(s, "|")
}

func TestDrawViews(t *testing.T) {
	img := tensor.New(3, 8, 8)
	a := tensor.New(1, 4, 4) // a layer's coarser map
	for i := range a.F {
		a.F[i] = float32(i)
	}
	o := viz.ImageOptions{Sign: viz.Positive, Title: "IG"}
	// Default: the heat map and, over a picture, the blended heat map,
	// 600 pixels per view.
	f, err := Draw(a, img, Drawing{Options: o})
	if err != nil || titles(f) != "heat map (positive part)|blended heat map (positive part)" || f.Width != 1200 || f.Height != 600 || f.Title != "IG" {
		t.Fatalf("default views: %v %+v", err, f)
	}
	if f, err = Draw(a, nil, Drawing{Options: o}); err != nil || titles(f) != "heat map (positive part)" || f.Width != 600 {
		t.Errorf("default views without a picture: %v %q", err, titles(f))
	}
	// One view, with its own title, and another when there is no picture.
	one := Drawing{Views: []viz.ImageView{{Method: viz.MethodMaskedImage, Sign: viz.Positive, Title: "T"}},
		Bare: []viz.ImageView{{Method: viz.MethodHeatMap, Sign: viz.Positive, Title: "T (no picture)"}}, Options: viz.ImageOptions{Width: 360, Height: 330}}
	if f, err = Draw(a, img, one); err != nil || titles(f) != "T" || f.Width != 360 {
		t.Errorf("one view: %v %q", err, titles(f))
	}
	if f, err = Draw(tensor.New(1, 9, 9), img, one); err != nil || titles(f) != "T (no picture) (no positive attribution)" { // a map of zeros says so
		t.Errorf("one view, map larger than the picture: %v %q", err, titles(f))
	}
	// Views that need a picture, and none: an error.
	if _, err := Draw(a, nil, Drawing{Views: one.Views}); err == nil || !strings.Contains(err.Error(), "needs the original image") {
		t.Errorf("masked image without a picture: %v", err)
	}
}
