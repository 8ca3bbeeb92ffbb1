// Package viz draws attributions as pictures, as Captum's visualization
// module does but into files. ImageAttr and ImageAttrMultiple make a Figure
// of one or several views of an image's attributions (heat maps, heat maps
// blended over the image, masked images, alpha scaling, the image alone;
// titles, color bars, sizes), with Captum's normalization (sum over
// channels, scaling by a percentile of the absolute values, clipping
// outliers) and color maps per sign; a Figure is written as PNG or SVG.
// The steps are exported too: Map2D, Normalize, HeatMap, Blend, Masked,
// AlphaScaling, Original and ColorBar draw single images, and GridSVG lays
// pictures already drawn out side by side. TextHTML and TextPNG color
// tokens by attribution; TimeSeriesSVG draws series over their
// attributions and LinePlotSVG plain curves (deletion and insertion
// curves). Of loupe, it uses only package tensor.
package viz

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"sort"

	"github.com/loupe-ml/loupe/tensor"
)

// Sign selects which attributions a picture shows, as Captum's sign.
type Sign int

// The signs.
const (
	AbsoluteValue Sign = iota // |a|, Blues (Captum's "absolute_value")
	Positive                  // a > 0, Greens
	Negative                  // a < 0, Reds
	All                       // both, red-white-green
)

// ParseSign reads Captum's names: "absolute_value", "positive", "negative", "all".
func ParseSign(s string) (Sign, error) {
	switch s {
	case "absolute_value", "":
		return AbsoluteValue, nil
	case "positive":
		return Positive, nil
	case "negative":
		return Negative, nil
	case "all":
		return All, nil
	}
	return 0, fmt.Errorf("viz: unknown sign %q (want absolute_value, positive, negative or all)", s)
}

// Map2D sums an attribution over its channel dimension: [C, H, W] or
// [H, W, C] (channelsLast) to H×W values, row-major; [H, W] is copied.
func Map2D(a *tensor.Tensor, channelsLast bool) ([]float64, int, int, error) {
	if a == nil {
		return nil, 0, 0, fmt.Errorf("viz: no attribution (nil tensor)")
	}
	if err := a.Check(); err != nil {
		return nil, 0, 0, fmt.Errorf("viz: attribution: %w", err)
	}
	switch a.Rank() {
	case 2:
		h, w := a.Shape[0], a.Shape[1]
		v := make([]float64, h*w)
		for i := range v {
			v[i] = a.Float64At(i)
		}
		return v, h, w, nil
	case 3:
		c, h, w := a.Shape[0], a.Shape[1], a.Shape[2]
		if channelsLast {
			h, w, c = a.Shape[0], a.Shape[1], a.Shape[2]
		}
		v := make([]float64, h*w)
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				for k := 0; k < c; k++ {
					if channelsLast {
						v[y*w+x] += a.Float64At((y*w+x)*c + k)
					} else {
						v[y*w+x] += a.Float64At((k*h+y)*w + x)
					}
				}
			}
		}
		return v, h, w, nil
	}
	return nil, 0, 0, fmt.Errorf("viz: attribution of shape %v is not an image ([C,H,W], [H,W,C] or [H,W])", a.Shape)
}

// Normalize scales values as Captum does for a sign: keep the sign's part
// (absolute values for AbsoluteValue), divide by the (100-outlierPerc)th
// percentile of their absolute values and clip to [-1, 1].
func Normalize(v []float64, s Sign, outlierPerc float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		switch s {
		case AbsoluteValue:
			out[i] = math.Abs(x)
		case Positive:
			out[i] = math.Max(x, 0)
		case Negative:
			out[i] = math.Min(x, 0)
		default:
			out[i] = x
		}
	}
	abs := make([]float64, len(out))
	for i, x := range out {
		abs[i] = math.Abs(x)
	}
	sort.Float64s(abs)
	// Captum: cumulative sums of the sorted values, threshold where they
	// reach (100 - outlierPerc)% of the total.
	total := 0.0
	for _, x := range abs {
		total += x
	}
	scale := 0.0
	if total > 0 {
		acc := 0.0
		for _, x := range abs {
			acc += x
			if acc >= total*(100-outlierPerc)/100 {
				scale = x
				break
			}
		}
	}
	if scale <= 1e-5 {
		return make([]float64, len(out))
	}
	for i := range out {
		out[i] = math.Max(-1, math.Min(1, out[i]/scale))
	}
	return out
}

// HeatMap draws normalized values (from Normalize) as an h×w image with the
// sign's default color map, scaled up by an integer factor (lowered to keep
// the picture within MaxPixels). Values that are not an h×w map of at most
// MaxPixels give an empty picture.
func HeatMap(v []float64, h, w int, s Sign, scale int) *image.RGBA {
	return upscale(colorCells(v, h, w, s, DefaultColormap(s)), scale)
}

// Blend draws the heat map over a gray copy of the image (an input
// tensor [3, H, W] or [1, H, W] with values in [0, 1]), as Captum's
// blended_heat_map but readable on pale objects: the gray copy is
// darkened, and the heat map's opacity grows with each cell's magnitude
// up to min(1, 1.6 alpha) (see ImageOptions.AlphaOverlay).
func Blend(img *tensor.Tensor, v []float64, h, w int, s Sign, alpha float64, scale int) (*image.RGBA, error) {
	if img == nil {
		return nil, fmt.Errorf("viz: no image (nil tensor)")
	}
	if err := checkMap(v, h, w); err != nil {
		return nil, err
	}
	if img.Rank() != 3 || img.Shape[1] != h || img.Shape[2] != w {
		return nil, fmt.Errorf("viz: image of shape %v for a %dx%d heat map", img.Shape, h, w)
	}
	chw, err := imageCHW(img, false)
	if err != nil {
		return nil, err
	}
	return upscale(blendCells(chw, v, h, w, s, DefaultColormap(s), alpha), scale), nil
}

// Original draws an image tensor [C, H, W] in [0, 1] (1 or 3 channels),
// scaled up by an integer factor.
func Original(img *tensor.Tensor, scale int) (*image.RGBA, error) {
	if img == nil {
		return nil, fmt.Errorf("viz: no image (nil tensor)")
	}
	if err := img.Check(); err != nil {
		return nil, fmt.Errorf("viz: image: %w", err)
	}
	if img.Rank() != 3 || (img.Shape[0] != 1 && img.Shape[0] != 3) {
		return nil, fmt.Errorf("viz: image of shape %v, want [1 or 3, H, W]", img.Shape)
	}
	c, h, w := img.Shape[0], img.Shape[1], img.Shape[2]
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	px := func(k, y, x int) uint8 {
		return uint8(255 * math.Max(0, math.Min(1, img.Float64At((k*h+y)*w+x))))
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			if c == 1 {
				g := px(0, y, x)
				out.SetRGBA(x, y, color.RGBA{g, g, g, 255})
			} else {
				out.SetRGBA(x, y, color.RGBA{px(0, y, x), px(1, y, x), px(2, y, x), 255})
			}
		}
	}
	return upscale(out, scale), nil
}

// WritePNG writes an image to a PNG file.
func WritePNG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("viz: %w", err)
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return fmt.Errorf("viz: %s: %w", path, err)
	}
	return f.Close()
}

// Masked draws the image with each pixel scaled by its normalized
// attribution (values in [0, 1]; Captum's masked_image). It refuses the
// sign All, whose values can be negative.
func Masked(img *tensor.Tensor, v []float64, h, w int, s Sign, scale int) (*image.RGBA, error) {
	return scaled(img, v, h, w, s, scale, false)
}

// AlphaScaling draws the image with each pixel's opacity set to its
// normalized attribution (Captum's alpha_scaling). It refuses the sign All.
func AlphaScaling(img *tensor.Tensor, v []float64, h, w int, s Sign, scale int) (*image.RGBA, error) {
	return scaled(img, v, h, w, s, scale, true)
}

// scaled draws the image with each pixel scaled (Masked) or made
// transparent (AlphaScaling, alpha) by the magnitude of its normalized
// attribution, scaled up by an integer factor.
func scaled(img *tensor.Tensor, v []float64, h, w int, s Sign, scale int, alpha bool) (*image.RGBA, error) {
	if s == All {
		return nil, fmt.Errorf("viz: masked_image and alpha_scaling need a sign of positive, negative or absolute_value, not all")
	}
	base, err := Original(img, 1)
	if err != nil {
		return nil, err
	}
	if err := checkMap(v, h, w); err != nil {
		return nil, err
	}
	if img.Shape[1] != h || img.Shape[2] != w {
		return nil, fmt.Errorf("viz: image of shape %v for a %dx%d attribution map", img.Shape, h, w)
	}
	out := image.NewRGBA(base.Bounds())
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			f := math.Abs(v[y*w+x])
			c := base.RGBAAt(x, y)
			if alpha {
				out.SetRGBA(x, y, color.RGBA{c.R, c.G, c.B, uint8(255 * f)})
			} else {
				out.SetRGBA(x, y, color.RGBA{uint8(float64(c.R) * f), uint8(float64(c.G) * f), uint8(float64(c.B) * f), 255})
			}
		}
	}
	return upscale(out, scale), nil
}

// ColorBar draws a vertical color bar of the sign's color map, from the
// top (largest) to the bottom, width×height pixels (at most MaxPixels).
func ColorBar(s Sign, width, height int) *image.RGBA {
	// Within MaxPixels (a bar is narrow: the height is kept).
	width, height = max(width, 0), min(max(height, 0), MaxPixels)
	if height > 0 {
		width = min(width, MaxPixels/height)
	}
	cm := DefaultColormap(s)
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	lo := 0.0
	if s == All || s == Negative {
		lo = -1
	}
	hi := 1.0
	if s == Negative {
		hi = 0
	}
	for y := 0; y < height; y++ {
		t := hi - (hi-lo)*float64(y)/float64(max(height-1, 1))
		c := cm.At(position(t, s))
		for x := 0; x < width; x++ {
			img.SetRGBA(x, y, c)
		}
	}
	return img
}
