package explain

import (
	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/tensor"
	"github.com/loupe-ml/loupe/viz"
)

// Example returns example e of a float batch t ([N, ...]) as a tensor of
// the remaining dimensions sharing t's values, or nil when t has no such
// example.
func Example(t *tensor.Tensor, e int) *tensor.Tensor {
	if t == nil || t.Rank() == 0 || t.DType != tensor.Float32 || e < 0 || e >= t.Shape[0] {
		return nil
	}
	n := t.Len() / t.Shape[0]
	ex, _ := tensor.FromFloat32(t.F[e*n:(e+1)*n], t.Shape[1:]...)
	return ex
}

// Picture returns example e of an image-like input x ([N, 1 or 3, H, W]
// floats) as [C, H, W], or nil when x is not one.
func Picture(x *tensor.Tensor, e int) *tensor.Tensor {
	if x == nil || x.Rank() != 4 || (x.Shape[1] != 1 && x.Shape[1] != 3) {
		return nil
	}
	return Example(x, e)
}

// Fit readies one example's map a ([C, h, w]) to be drawn over img
// ([C, H, W], or nil): a map smaller than the image (a layer's, such as
// Grad-CAM's) is upsampled bilinearly to it, as Captum's
// LayerAttribution.interpolate. It returns the map and the image, or nil
// for the image when the two still differ in size.
func Fit(a, img *tensor.Tensor) (*tensor.Tensor, *tensor.Tensor, error) {
	if img == nil || img.Rank() != 3 || a.Rank() != 3 {
		return a, nil, nil
	}
	h, w, H, W := a.Shape[1], a.Shape[2], img.Shape[1], img.Shape[2]
	if h <= H && w <= W && (h < H || w < W) {
		a4, _ := a.Reshape(append([]int{1}, a.Shape...)...)
		up, err := attr.Interpolate(a4, img.Shape[1:], "bilinear")
		if err != nil {
			return nil, nil, err
		}
		a, _ = up.Reshape(up.Shape[1:]...)
		h, w = H, W
	}
	if h != H || w != W {
		return a, nil, nil
	}
	return a, img, nil
}

// Drawing says how Draw draws an example's map.
type Drawing struct {
	// Views are drawn side by side when the map fits the picture. Nil:
	// the heat map, then the heat map blended over the picture, in
	// Options.Sign.
	Views []viz.ImageView
	// Bare are drawn instead when there is no picture to draw on (none
	// given, or a map of another size). Nil: Views when given, else the
	// heat map.
	Bare []viz.ImageView
	// Options are the figure's: sign of the default views, color map,
	// color bar, title, size. Width 0 is 600 pixels per view.
	Options viz.ImageOptions
}

// Draw draws one example's attribution map a ([C, h, w] or [h, w]) over
// its picture img ([C, H, W] in [0, 1], or nil), fitted first (Fit), as
// the drawing says.
func Draw(a, img *tensor.Tensor, d Drawing) (*viz.Figure, error) {
	a, img, err := Fit(a, img)
	if err != nil {
		return nil, err
	}
	views := d.Views
	switch {
	case img == nil && d.Bare != nil:
		views = d.Bare
	case views == nil:
		views = []viz.ImageView{{Method: viz.MethodHeatMap, Sign: d.Options.Sign, Title: "heat map" + signNote(d.Options.Sign)}}
		if img != nil {
			views = append(views, viz.ImageView{Method: viz.MethodBlendedHeatMap, Sign: d.Options.Sign, Title: "blended heat map" + signNote(d.Options.Sign)})
		}
	}
	o := d.Options
	if o.Width == 0 {
		o.Width = 600 * len(views)
	}
	return viz.ImageAttrMultiple(a, img, views, o)
}

// signNote says which attributions a default view shows: " (positive
// part)", " (absolute value)", " (negative part)" or " (both signs)".
func signNote(s viz.Sign) string {
	switch s {
	case viz.Positive:
		return " (positive part)"
	case viz.Negative:
		return " (negative part)"
	case viz.All:
		return " (both signs)"
	}
	return " (absolute value)"
}
