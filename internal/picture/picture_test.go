package picture

import (
	"testing"

	"github.com/loupe-ml/loupe/tensor"
)

func TestOfAndFit(t *testing.T) {
	x := tensor.New(2, 3, 4, 4)
	for i := range x.F {
		x.F[i] = float32(i)
	}
	img := Of(x, 1)
	if img == nil || !tensor.SameShape(img.Shape, []int{3, 4, 4}) || img.F[0] != 48 {
		t.Fatalf("example 1: %v", img)
	}
	if Of(tensor.New(2, 4, 4, 4), 0) != nil || Of(x, 2) != nil {
		t.Error("four channels or a missing example gave an image")
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
