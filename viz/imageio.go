package viz

import (
	"fmt"
	"image"
	_ "image/jpeg" // JPEG inputs
	_ "image/png"  // PNG inputs
	"os"

	"github.com/loupe-ml/loupe/tensor"
)

// Preprocess says how to turn a picture file into a model input, as
// torchvision's usual transforms: resize the shorter side, crop the center,
// scale to [0, 1], then normalize each channel by (x - Mean) / Std.
type Preprocess struct {
	Resize     int       // shorter side after resizing (0: keep)
	CenterCrop int       // side of the center crop (0: none)
	Mean, Std  []float64 // per channel (nil: no normalization)
	Gray       bool      // one channel instead of three
}

// LoadImage reads a PNG or JPEG file into a [1, C, H, W] float tensor as
// the preprocessing says, and also returns the image before normalization
// (values in [0, 1], [C, H, W]) for drawing.
func LoadImage(path string, p Preprocess) (input, shown *tensor.Tensor, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	src, _, err := image.Decode(f)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	if w == 0 || h == 0 {
		return nil, nil, fmt.Errorf("%s: empty image", path)
	}
	// Sizes after resizing the shorter side, then the crop window.
	rw, rh := w, h
	if p.Resize > 0 {
		if w < h {
			rw, rh = p.Resize, h*p.Resize/w
		} else {
			rw, rh = w*p.Resize/h, p.Resize
		}
	}
	ow, oh, x0, y0 := rw, rh, 0, 0
	if p.CenterCrop > 0 {
		if p.CenterCrop > rw || p.CenterCrop > rh {
			return nil, nil, fmt.Errorf("%s: crop %d is larger than the resized image %dx%d", path, p.CenterCrop, rw, rh)
		}
		ow, oh = p.CenterCrop, p.CenterCrop
		x0, y0 = (rw-ow)/2, (rh-oh)/2
	}
	c := 3
	if p.Gray {
		c = 1
	}
	shown = tensor.New(c, oh, ow)
	// Bilinear sampling of the source at the resized grid (half-pixel centers).
	sample := func(fx, fy float64) [3]float64 {
		fx = fx*float64(w)/float64(rw) - 0.5
		fy = fy*float64(h)/float64(rh) - 0.5
		ix, iy := int(fx), int(fy)
		if fx < 0 {
			ix, fx = 0, 0
		}
		if fy < 0 {
			iy, fy = 0, 0
		}
		ix1, iy1 := min(ix+1, w-1), min(iy+1, h-1)
		ix, iy = min(ix, w-1), min(iy, h-1)
		ax, ay := fx-float64(ix), fy-float64(iy)
		ax, ay = max(0, min(1, ax)), max(0, min(1, ay))
		px := func(x, y int) [3]float64 {
			r, g, bb, _ := src.At(b.Min.X+x, b.Min.Y+y).RGBA()
			return [3]float64{float64(r) / 65535, float64(g) / 65535, float64(bb) / 65535}
		}
		p00, p10, p01, p11 := px(ix, iy), px(ix1, iy), px(ix, iy1), px(ix1, iy1)
		var out [3]float64
		for k := range out {
			out[k] = (1-ay)*((1-ax)*p00[k]+ax*p10[k]) + ay*((1-ax)*p01[k]+ax*p11[k])
		}
		return out
	}
	for y := 0; y < oh; y++ {
		for x := 0; x < ow; x++ {
			v := sample(float64(x0+x)+0.5, float64(y0+y)+0.5)
			if p.Gray {
				shown.F[y*ow+x] = float32(0.299*v[0] + 0.587*v[1] + 0.114*v[2])
				continue
			}
			for k := 0; k < 3; k++ {
				shown.F[(k*oh+y)*ow+x] = float32(v[k])
			}
		}
	}
	input = tensor.New(1, c, oh, ow)
	copy(input.F, shown.F)
	if p.Mean != nil || p.Std != nil {
		if len(p.Mean) != c || len(p.Std) != c {
			return nil, nil, fmt.Errorf("normalization needs %d means and %d standard deviations, got %d and %d", c, c, len(p.Mean), len(p.Std))
		}
		for k := 0; k < c; k++ {
			for i := 0; i < oh*ow; i++ {
				input.F[k*oh*ow+i] = float32((float64(input.F[k*oh*ow+i]) - p.Mean[k]) / p.Std[k])
			}
		}
	}
	return input, shown, nil
}
