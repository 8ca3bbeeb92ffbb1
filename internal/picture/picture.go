// Package picture holds what the command line and Insights share to draw
// an attribution map over the image it explains: finding the image in an
// input, and fitting a layer's coarser map to it.
package picture

import (
	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/tensor"
)

// Of returns example e of an image-like input x ([N, 1 or 3, H, W]
// floats) as [C, H, W], or nil when x is not one.
func Of(x *tensor.Tensor, e int) *tensor.Tensor {
	if x == nil || x.Rank() != 4 || (x.Shape[1] != 1 && x.Shape[1] != 3) || x.DType != tensor.Float32 || e < 0 || e >= x.Shape[0] {
		return nil
	}
	n := x.Len() / x.Shape[0]
	img, _ := tensor.FromFloat32(x.F[e*n:(e+1)*n], x.Shape[1:]...)
	return img
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
