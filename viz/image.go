package viz

import (
	"fmt"
	"image"
	"image/color"
	"math"

	"github.com/loupe-ml/loupe/tensor"
)

// Image visualization methods, with Captum's names.
const (
	MethodHeatMap        = "heat_map"         // the attributions alone, in the sign's color map
	MethodBlendedHeatMap = "blended_heat_map" // the heat map over a darkened gray copy of the image, more opaque where larger
	MethodOriginalImage  = "original_image"   // the image alone
	MethodMaskedImage    = "masked_image"     // the image scaled by the attributions
	MethodAlphaScaling   = "alpha_scaling"    // the image with the attributions as opacity
)

// ImageMethods returns the visualization methods ImageAttr knows.
func ImageMethods() []string {
	return []string{MethodHeatMap, MethodBlendedHeatMap, MethodOriginalImage, MethodMaskedImage, MethodAlphaScaling}
}

// ImageOptions are the arguments of ImageAttr, as Captum's
// visualize_image_attr takes them. The zero value draws Captum's default:
// a heat map of absolute values without title or color bar, 600×600
// pixels.
type ImageOptions struct {
	// Method is one of ImageMethods(); "" is heat_map.
	Method string
	// Sign selects the attributions shown (default AbsoluteValue).
	Sign Sign
	// OutlierPerc is the percentage of the largest attributions clipped
	// when scaling: 0 means Captum's 2, a negative value none.
	OutlierPerc float64
	// Colormap names the color map (ColormapNames); "" is the sign's
	// default (DefaultColormap).
	Colormap string
	// AlphaOverlay sets the heat map's opacity in blended_heat_map; 0
	// means Captum's 0.5. Where the attribution is largest the heat map's
	// opacity is min(1, 1.6 AlphaOverlay), falling with the square root
	// of its magnitude to 0 where it is zero (blendCells), so the picture
	// shows through where nothing is attributed.
	AlphaOverlay float64
	// ColorBar draws a color bar beside each view.
	ColorBar bool
	// Title goes above the figure (ImageAttr) or is the figure's title
	// over the views' own (ImageAttrMultiple).
	Title string
	// Width and Height are the figure's size in pixels; 0 means 600×600
	// for one view (Captum's 6×6 inches at 100 dpi) and 800×600 for
	// several.
	Width, Height int
	// ChannelsLast says the attributions and the image are [H, W, C]
	// rather than [C, H, W].
	ChannelsLast bool
}

// ImageView is one view of ImageAttrMultiple: a method, a sign and a
// title.
type ImageView struct {
	Method string
	Sign   Sign
	Title  string
}

// ImageAttr draws an attribution map of an image as Captum's
// visualize_image_attr does: attr is [C, H, W], [H, W, C] (ChannelsLast)
// or [H, W] and is summed over channels; img, needed by every method but
// heat_map, has the same height and width, 1 or 3 channels, and values in
// [0, 1] (float) or 0 to 255 (int64). Write the figure with its
// WriteFile, PNG or SVG methods.
func ImageAttr(attr, img *tensor.Tensor, o ImageOptions) (*Figure, error) {
	view := ImageView{Method: o.Method, Sign: o.Sign, Title: o.Title}
	o.Title = ""
	return ImageAttrMultiple(attr, img, []ImageView{view}, o)
}

// ImageAttrMultiple draws several views of one attribution map side by
// side, each with its own method, sign and title (Captum's
// visualize_image_attr_multiple); o gives the options shared by the views
// (its Method and Sign are ignored) and the figure's title and size.
func ImageAttrMultiple(attr, img *tensor.Tensor, views []ImageView, o ImageOptions) (*Figure, error) {
	if len(views) == 0 {
		return nil, fmt.Errorf("viz: no views to draw")
	}
	if attr == nil {
		return nil, fmt.Errorf("viz: no attributions to draw")
	}
	v, h, w, err := Map2D(attr, o.ChannelsLast)
	if err != nil {
		return nil, err
	}
	var chw *tensor.Tensor
	if img != nil {
		if chw, err = imageCHW(img, o.ChannelsLast); err != nil {
			return nil, err
		}
		if chw.Shape[1] != h || chw.Shape[2] != w {
			return nil, fmt.Errorf("viz: image of %dx%d pixels for attributions of %dx%d", chw.Shape[1], chw.Shape[2], h, w)
		}
	}
	perc := o.OutlierPerc
	switch {
	case perc == 0:
		perc = 2
	case perc < 0:
		perc = 0
	}
	if perc >= 100 {
		return nil, fmt.Errorf("viz: outlier percentage %g, want less than 100", perc)
	}
	alpha := o.AlphaOverlay
	if alpha == 0 {
		alpha = 0.5
	}
	if alpha < 0 || alpha > 1 {
		return nil, fmt.Errorf("viz: alpha overlay %g, want a value in [0, 1]", alpha)
	}
	fig := &Figure{Title: o.Title, Width: o.Width, Height: o.Height}
	if fig.Width <= 0 {
		fig.Width = 600
		if len(views) > 1 {
			fig.Width = 800
		}
	}
	if fig.Height <= 0 {
		fig.Height = 600
	}
	for _, view := range views {
		method := view.Method
		if method == "" {
			method = MethodHeatMap
		}
		cmap := DefaultColormap(view.Sign)
		if o.Colormap != "" {
			if cmap, err = ColormapByName(o.Colormap); err != nil {
				return nil, err
			}
		}
		if method != MethodHeatMap && chw == nil {
			return nil, fmt.Errorf("viz: %s needs the original image", method)
		}
		nv := Normalize(v, view.Sign, perc)
		p := Panel{Title: view.Title}
		empty := IsEmpty(nv)
		if empty && (method == MethodHeatMap || method == MethodBlendedHeatMap || method == MethodMaskedImage || method == MethodAlphaScaling) {
			p.Title += " (" + emptyNote(view.Sign) + ")"
		}
		switch method {
		case MethodHeatMap:
			p.Picture, p.Vector = colorCells(nv, h, w, view.Sign, cmap), true
		case MethodBlendedHeatMap:
			p.Picture = blendCells(chw, nv, h, w, view.Sign, cmap, alpha)
		case MethodOriginalImage:
			p.Picture, _ = Original(chw, 1)
		case MethodMaskedImage, MethodAlphaScaling:
			if p.Picture, err = scaled(chw, nv, h, w, view.Sign, 1, method == MethodAlphaScaling); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("viz: unknown visualization method %q (want one of %v)", method, ImageMethods())
		}
		// A color bar describes the heat map's colors: the heat map
		// and the blend have them; masked and alpha-scaled images show
		// the picture's own colors, and an empty map none.
		if o.ColorBar && (method == MethodHeatMap || method == MethodBlendedHeatMap) && !empty {
			c := cmap
			p.Bar = &c
			switch view.Sign {
			case All:
				p.BarRange = [2]float64{-1, 1}
			case Negative:
				p.BarRange = [2]float64{0, -1} // the darkest red is the most negative
			default:
				p.BarRange = [2]float64{0, 1}
			}
		}
		fig.Panels = append(fig.Panels, p)
	}
	return fig, nil
}

// imageCHW returns an image as float32 [C, H, W] in [0, 1]: int64 pixels
// are read as 8-bit values, floats clipped; [H, W] gets one channel.
func imageCHW(img *tensor.Tensor, channelsLast bool) (*tensor.Tensor, error) {
	var c, h, w int
	switch {
	case img.Rank() == 2:
		c, h, w = 1, img.Shape[0], img.Shape[1]
	case img.Rank() == 3 && channelsLast:
		h, w, c = img.Shape[0], img.Shape[1], img.Shape[2]
	case img.Rank() == 3:
		c, h, w = img.Shape[0], img.Shape[1], img.Shape[2]
	default:
		return nil, fmt.Errorf("viz: image of shape %v, want [C, H, W], [H, W, C] or [H, W]", img.Shape)
	}
	if c != 1 && c != 3 {
		return nil, fmt.Errorf("viz: image of shape %v has %d channels, want 1 or 3", img.Shape, c)
	}
	if img.DType != tensor.Float32 && img.DType != tensor.Int64 {
		return nil, fmt.Errorf("viz: image of type %v, want float (0 to 1) or int64 (0 to 255)", img.DType)
	}
	out := tensor.New(c, h, w)
	for k := 0; k < c; k++ {
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				src := (k*h+y)*w + x
				if channelsLast && img.Rank() == 3 {
					src = (y*w+x)*c + k
				}
				val := img.Float64At(src)
				if img.DType == tensor.Int64 {
					val /= 255
				}
				out.F[(k*h+y)*w+x] = float32(math.Max(0, math.Min(1, val)))
			}
		}
	}
	return out, nil
}

// colorCells draws normalized values as an h×w image in a color map.
func colorCells(v []float64, h, w int, s Sign, cmap Colormap) *image.RGBA {
	if !mapFits(v, h, w) {
		return image.NewRGBA(image.Rect(0, 0, 0, 0))
	}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i, x := range v {
		img.SetRGBA(i%w, i/w, cmap.At(position(x, s)))
	}
	return img
}

// Gray levels of the image's copy under a blended heat map: its darkest
// and lightest pixels. Kept away from white so that pale objects stay
// visible under the pale end of a color map (Greens and Blues start at
// white), and away from black so that dark ones do too.
const (
	blendGrayLo = 0.08
	blendGrayHi = 0.62
	// blendColorLo is where, on the color map, the blend's colors start.
	blendColorLo = 0.4
)

// blendCells draws the heat map over the image's gray copy (scaled to its
// own range, as matplotlib shows it, then into [blendGrayLo,
// blendGrayHi]). The heat map's opacity grows with the square root of
// each cell's magnitude, to min(1, 1.6 alpha) at the largest, and its
// color is taken from the map's stronger part: cells without attribution
// show the picture, weak ones a tint, strong ones the map's color.
func blendCells(img *tensor.Tensor, v []float64, h, w int, s Sign, cmap Colormap, alpha float64) *image.RGBA {
	c := img.Shape[0]
	gray := make([]float64, h*w)
	lo, hi := math.Inf(1), math.Inf(-1)
	for i := range gray {
		for k := 0; k < c; k++ {
			gray[i] += float64(img.F[k*h*w+i])
		}
		gray[i] /= float64(c)
		lo, hi = math.Min(lo, gray[i]), math.Max(hi, gray[i])
	}
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	for i, x := range v {
		g := 0.0
		if hi > lo {
			g = (gray[i] - lo) / (hi - lo)
		}
		g = blendGrayLo + (blendGrayHi-blendGrayLo)*g
		// The color skips the map's pale end (white, in the sequential
		// and diverging maps): the opacity already tells the magnitude.
		m := math.Min(1, math.Abs(x))
		hc := cmap.At(position(math.Copysign(blendColorLo+(1-blendColorLo)*m, x), s))
		a := math.Min(1, 1.6*alpha) * math.Sqrt(m)
		mix := func(ch uint8) uint8 { return uint8(math.Round((1-a)*g*255 + a*float64(ch))) }
		out.SetRGBA(i%w, i/w, color.RGBA{mix(hc.R), mix(hc.G), mix(hc.B), 255})
	}
	return out
}

// upscale enlarges a picture by an integer factor.
func upscale(src *image.RGBA, scale int) *image.RGBA {
	b := src.Bounds()
	// The scale is lowered so that the picture holds at most MaxPixels.
	if px := float64(b.Dx() * b.Dy()); scale > 1 && px*float64(scale)*float64(scale) > MaxPixels {
		scale = int(math.Sqrt(MaxPixels / max(px, 1)))
		for scale > 1 && px*float64(scale)*float64(scale) > MaxPixels {
			scale--
		}
	}
	if scale <= 1 {
		return src
	}
	out := image.NewRGBA(image.Rect(0, 0, b.Dx()*scale, b.Dy()*scale))
	for y := 0; y < b.Dy()*scale; y++ {
		for x := 0; x < b.Dx()*scale; x++ {
			out.SetRGBA(x, y, src.RGBAAt(b.Min.X+x/scale, b.Min.Y+y/scale))
		}
	}
	return out
}

// IsEmpty reports whether normalized values (from Normalize) are all zero:
// the sign shown has nothing to draw (the positive part of a map that is
// all negative, or a map of zeros), and a picture of it would be blank.
func IsEmpty(nv []float64) bool {
	for _, x := range nv {
		if x != 0 {
			return false
		}
	}
	return true
}

// emptyNote says what an empty view lacks.
func emptyNote(s Sign) string {
	switch s {
	case Positive:
		return "no positive attribution"
	case Negative:
		return "no negative attribution"
	}
	return "all zero"
}

// MaxPixels bounds the pictures viz draws: an upscaling factor is lowered
// to stay within it, and a map larger than it is refused (or, where a
// function returns no error, drawn as an empty picture).
const MaxPixels = 1 << 24

// mapFits reports whether v holds an h×w map that viz can draw.
func mapFits(v []float64, h, w int) bool {
	return h >= 0 && w >= 0 && (w == 0 || h <= MaxPixels/w) && len(v) == h*w
}

// checkMap returns an error unless v holds an h×w map that viz can draw.
func checkMap(v []float64, h, w int) error {
	if !mapFits(v, h, w) {
		return fmt.Errorf("viz: %d values for a %dx%d map (at most %d pixels)", len(v), h, w, MaxPixels)
	}
	return nil
}
