package preprocess

import (
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/tensor"
)

// writePNG writes a w×h picture whose pixel (x, y) is at(x, y).
func writePNG(t *testing.T, w, h int, at func(x, y int) color.Color) string {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, at(x, y))
		}
	}
	path := filepath.Join(t.TempDir(), "in.png")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	return path
}

func near(got []float32, want ...float64) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if math.Abs(float64(got[i])-want[i]) > 1e-6 {
			return false
		}
	}
	return true
}

// A plain picture is resized, cropped and normalized per channel.
func TestResizeCropNormalize(t *testing.T) {
	path := writePNG(t, 6, 4, func(x, y int) color.Color { return color.NRGBA{255, 0, 51, 255} }) // (1, 0, 0.2)
	x, shown, err := Load(path, Options{Resize: 2, CenterCrop: 2, Mean: []float64{0.5, 0.5, 0.1}, Std: []float64{0.5, 0.25, 0.1}})
	if err != nil {
		t.Fatal(err)
	}
	if !tensor.SameShape(x.Shape, []int{1, 3, 2, 2}) || !tensor.SameShape(shown.Shape, []int{3, 2, 2}) {
		t.Fatalf("shapes %v and %v, want [1 3 2 2] and [3 2 2]", x.Shape, shown.Shape)
	}
	if !near(shown.F, 1, 1, 1, 1, 0, 0, 0, 0, 0.2, 0.2, 0.2, 0.2) {
		t.Errorf("shown %v", shown.F)
	}
	if !near(x.F, 1, 1, 1, 1, -2, -2, -2, -2, 1, 1, 1, 1) {
		t.Errorf("input %v, want (1-0.5)/0.5, (0-0.5)/0.25, (0.2-0.1)/0.1", x.F)
	}
	g, _, err := Load(path, Options{Gray: true})
	if err != nil || !tensor.SameShape(g.Shape, []int{1, 1, 4, 6}) || !near(g.F[:1], 0.299+0.114*0.2) {
		t.Errorf("gray: %v %v", g, err)
	}
}

// Resizing samples at the pixel centers; the crop is the center.
func TestSamplingAndCropWindow(t *testing.T) {
	// Four 2×2 quadrants: black, white, gray 0.2 (51), gray 0.6 (153).
	quad := []uint8{0, 255, 51, 153}
	path := writePNG(t, 4, 4, func(x, y int) color.Color {
		v := quad[2*(y/2)+x/2]
		return color.NRGBA{v, v, v, 255}
	})
	_, shown, err := Load(path, Options{Resize: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !near(shown.F[:4], 0, 1, 0.2, 0.6) {
		t.Errorf("halved: %v, want one pixel per quadrant", shown.F[:4])
	}
	_, shown, err = Load(path, Options{CenterCrop: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !near(shown.F[:4], 0, 1, 0.2, 0.6) {
		t.Errorf("center crop: %v, want the quadrants' inner pixels", shown.F[:4])
	}
	// The shorter side is resized; the other keeps the aspect ratio.
	wide := writePNG(t, 8, 4, func(x, y int) color.Color { return color.Gray{128} })
	x, _, err := Load(wide, Options{Resize: 2})
	if err != nil || !tensor.SameShape(x.Shape, []int{1, 3, 2, 4}) {
		t.Errorf("8x4 resized to 2: %v %v, want [1 3 2 4]", x, err)
	}
}

func TestErrors(t *testing.T) {
	path := writePNG(t, 4, 4, func(x, y int) color.Color { return color.Black })
	notPNG := filepath.Join(t.TempDir(), "x.png")
	os.WriteFile(notPNG, []byte("not a picture"), 0o644)
	for _, tc := range []struct {
		path string
		o    Options
		want string
	}{
		{path, Options{CenterCrop: 5}, "crop 5 is larger than the resized image 4x4"},
		{path, Options{Mean: []float64{0.5}, Std: []float64{0.5}}, "3 means"},
		{path, Options{Mean: []float64{0.5, 0.5, 0.5}}, "3 standard deviations"},
		{notPNG, Options{}, "x.png"},
		{filepath.Join(t.TempDir(), "missing.png"), Options{}, "missing.png"},
	} {
		if _, _, err := Load(tc.path, tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one mentioning %q", tc.o, err, tc.want)
		}
	}
	if _, _, err := Image(image.NewGray(image.Rect(0, 0, 0, 3)), Options{}); err == nil {
		t.Error("empty picture: no error")
	}
}

// The imagenet preset is torchvision's resize 256, crop 224 and ImageNet's
// statistics: a 300x400 picture becomes a [1, 3, 224, 224] input.
func TestPresetImageNet(t *testing.T) {
	o, err := Preset("imagenet")
	if err != nil || o.Resize != 256 || o.CenterCrop != 224 || len(o.Mean) != 3 || o.Std[2] != 0.225 {
		t.Fatalf("Preset(imagenet) = %+v, %v", o, err)
	}
	src := image.NewRGBA(image.Rect(0, 0, 400, 300))
	x, shown, err := Image(src, o)
	if err != nil || !tensor.SameShape(x.Shape, []int{1, 3, 224, 224}) || !tensor.SameShape(shown.Shape, []int{3, 224, 224}) {
		t.Fatalf("imagenet input %v, shown %v, %v", x, shown, err)
	}
	if want := float32((0 - 0.485) / 0.229); math.Abs(float64(x.F[0]-want)) > 1e-6 {
		t.Errorf("black pixel normalized to %g, want %g", x.F[0], want)
	}
	if _, err := Preset("cifar"); err == nil || !strings.Contains(err.Error(), "imagenet") {
		t.Errorf("unknown preset: %v", err)
	}
	if o, err := Preset("none"); err != nil || o.Resize != 0 {
		t.Errorf("Preset(none) = %+v, %v", o, err)
	}
}
