// Package preprocess turns pictures into model inputs as torchvision's
// usual transforms do: resize the shorter side, crop the center, scale the
// pixels to [0, 1], then normalize each channel by (x - mean) / std.
//
//	x, shown, err := preprocess.Load("cat.png", preprocess.Options{
//		Resize: 256, CenterCrop: 224,
//		Mean: []float64{0.485, 0.456, 0.406}, Std: []float64{0.229, 0.224, 0.225},
//	})
//
// x is the model's input, [1, C, H, W]; shown is the same picture before
// normalization, [C, H, W] in [0, 1], to draw attributions over.
package preprocess

import (
	"bytes"
	"fmt"
	"image"
	_ "image/jpeg" // JPEG files
	_ "image/png"  // PNG files
	"io"
	"math"
	"path/filepath"
	"strings"

	"github.com/loupe-ml/loupe/internal/fileio"
	"github.com/loupe-ml/loupe/npy"
	"github.com/loupe-ml/loupe/tensor"
)

// Options says how to turn a picture into a model input. The zero value
// keeps the picture's size and values in [0, 1], three channels.
type Options struct {
	// Resize is the shorter side after resizing, the other side keeping
	// the aspect ratio (0: keep the size).
	Resize int
	// CenterCrop is the side of the square cut from the center after
	// resizing (0: no crop).
	CenterCrop int
	// Mean and Std hold one value per channel; the input is (x - Mean) /
	// Std. Both nil: no normalization.
	Mean, Std []float64
	// Gray gives one channel (luma, 0.299 R + 0.587 G + 0.114 B) instead
	// of three.
	Gray bool
}

// ImageNet returns torchvision's usual ImageNet preprocessing: resize the
// shorter side to 256, crop the central 224×224, normalize by ImageNet's
// channel means and standard deviations. The models of torchvision
// (ResNet, MobileNet, DenseNet, VGG, ...) expect it.
func ImageNet() Options {
	return Options{Resize: 256, CenterCrop: 224, Mean: []float64{0.485, 0.456, 0.406}, Std: []float64{0.229, 0.224, 0.225}}
}

// Preset returns a named preprocessing: "imagenet" (ImageNet), or "none"
// and "" (the zero Options). Errors name the presets known.
func Preset(name string) (Options, error) {
	switch name {
	case "", "none":
		return Options{}, nil
	case "imagenet":
		return ImageNet(), nil
	}
	return Options{}, fmt.Errorf("preprocess: unknown preset %q (want imagenet or none)", name)
}

// Load reads a PNG or JPEG file and preprocesses it as Image does.
// Errors name the file.
func Load(path string, o Options) (input, shown *tensor.Tensor, err error) {
	f, _, err := fileio.OpenRegular(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	src, err := Decode(f)
	if err == nil {
		input, shown, err = Image(src, o)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return input, shown, nil
}

// MaxPixels is the most pixels (width times height) a picture may declare:
// Decode and Load refuse larger ones before decoding them, and Image
// refuses to produce a larger output.
const MaxPixels = 1 << 26

// Decode decodes a PNG or JPEG after checking the size its header
// declares against MaxPixels, so that a small file declaring a huge
// picture fails before any pixel is allocated.
func Decode(r io.Reader) (image.Image, error) {
	if r == nil {
		return nil, fmt.Errorf("preprocess: no reader")
	}
	var head bytes.Buffer
	cfg, _, err := image.DecodeConfig(io.TeeReader(r, &head))
	if err != nil {
		return nil, err
	}
	if err := checkPixels(cfg.Width, cfg.Height); err != nil {
		return nil, err
	}
	src, _, err := image.Decode(io.MultiReader(&head, r))
	return src, err
}

// checkPixels refuses a w×h picture with a non-positive side or more than
// MaxPixels pixels.
func checkPixels(w, h int) error {
	if w <= 0 || h <= 0 {
		return fmt.Errorf("image of %dx%d pixels", w, h)
	}
	if w > MaxPixels/h {
		return fmt.Errorf("image of %dx%d pixels (at most %d pixels)", w, h, MaxPixels)
	}
	return nil
}

// Image preprocesses a picture: it returns the model input [1, C, H, W]
// and the picture before normalization, [C, H, W] with values in [0, 1].
// Resizing samples the picture bilinearly at the pixel centers.
func Image(src image.Image, o Options) (input, shown *tensor.Tensor, err error) {
	if src == nil {
		return nil, nil, fmt.Errorf("preprocess: no image")
	}
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	if w == 0 || h == 0 {
		return nil, nil, fmt.Errorf("empty image")
	}
	if err := checkPixels(w, h); err != nil {
		return nil, nil, err
	}
	if o.Resize < 0 || o.Resize > MaxPixels || o.CenterCrop < 0 || o.CenterCrop > MaxPixels {
		return nil, nil, fmt.Errorf("resize %d or crop %d out of range (0 to %d)", o.Resize, o.CenterCrop, MaxPixels)
	}
	rw, rh := resized(w, h, o.Resize)
	if err := checkPixels(rw, rh); err != nil {
		return nil, nil, fmt.Errorf("resized to %dx%d: %w", rw, rh, err)
	}
	ow, oh, x0, y0 := rw, rh, 0, 0
	if o.CenterCrop > 0 {
		if o.CenterCrop > rw || o.CenterCrop > rh {
			return nil, nil, fmt.Errorf("crop %d is larger than the resized image %dx%d", o.CenterCrop, rw, rh)
		}
		ow, oh = o.CenterCrop, o.CenterCrop
		x0, y0 = (rw-ow)/2, (rh-oh)/2
	}
	c := 3
	if o.Gray {
		c = 1
	}
	shown = tensor.New(c, oh, ow)
	for y := 0; y < oh; y++ {
		for x := 0; x < ow; x++ {
			v := bilinear(src, (float64(x0+x)+0.5)*float64(w)/float64(rw)-0.5, (float64(y0+y)+0.5)*float64(h)/float64(rh)-0.5)
			if o.Gray {
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
	if err := normalize(input.F, c, o.Mean, o.Std); err != nil {
		return nil, nil, err
	}
	return input, shown, nil
}

// resized returns a w×h picture's size once its shorter side is short
// (0: unchanged).
func resized(w, h, short int) (int, int) {
	switch {
	case short <= 0:
		return w, h
	case w < h:
		return short, h * short / w
	}
	return w * short / h, short
}

// bilinear samples src's RGB in [0, 1] at (fx, fy), in pixels from its
// top-left pixel's center, clamped at the edges.
func bilinear(src image.Image, fx, fy float64) [3]float64 {
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	fx, fy = max(fx, 0), max(fy, 0)
	ix, iy := min(int(fx), w-1), min(int(fy), h-1)
	ix1, iy1 := min(ix+1, w-1), min(iy+1, h-1)
	ax, ay := max(0, min(1, fx-float64(ix))), max(0, min(1, fy-float64(iy)))
	px := func(x, y int) [3]float64 {
		r, g, bl, _ := src.At(b.Min.X+x, b.Min.Y+y).RGBA()
		return [3]float64{float64(r) / 65535, float64(g) / 65535, float64(bl) / 65535}
	}
	p00, p10, p01, p11 := px(ix, iy), px(ix1, iy), px(ix, iy1), px(ix1, iy1)
	var out [3]float64
	for k := range out {
		out[k] = (1-ay)*((1-ax)*p00[k]+ax*p10[k]) + ay*((1-ax)*p01[k]+ax*p11[k])
	}
	return out
}

// normalize maps the c channels of f (one after the other) to (x - mean)
// / std; with neither given it leaves f alone.
func normalize(f []float32, c int, mean, std []float64) error {
	if mean == nil && std == nil {
		return nil
	}
	if len(mean) != c || len(std) != c {
		return fmt.Errorf("normalization needs %d means and %d standard deviations, got %d and %d", c, c, len(mean), len(std))
	}
	for k := range c {
		if math.IsNaN(mean[k]) || math.IsInf(mean[k], 0) || math.IsNaN(std[k]) || math.IsInf(std[k], 0) || std[k] == 0 {
			return fmt.Errorf("normalization of channel %d: mean %v, std %v (want finite values, std not 0)", k, mean[k], std[k])
		}
	}
	n := len(f) / c
	for k := 0; k < c; k++ {
		for i := k * n; i < (k+1)*n; i++ {
			f[i] = float32((float64(f[i]) - mean[k]) / std[k])
		}
	}
	return nil
}

// IsImage reports whether a file name is a picture's that Load reads (PNG
// or JPEG, by its extension).
func IsImage(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".png", ".jpg", ".jpeg":
		return true
	}
	return false
}

// IsInput reports whether a file name is a model input's that ReadInput
// reads: a picture or a NumPy .npy array.
func IsInput(name string) bool {
	return IsImage(name) || strings.EqualFold(filepath.Ext(name), ".npy")
}

// ReadInput reads a model input file as loupe's commands do: a picture,
// preprocessed by o (shown is the picture before normalization, for
// drawing), or else a .npy array (shown is nil).
func ReadInput(path string, o Options) (input, shown *tensor.Tensor, err error) {
	if IsImage(path) {
		return Load(path, o)
	}
	input, err = npy.ReadFile(path)
	return input, nil, err
}
