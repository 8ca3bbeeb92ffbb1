package demo

import (
	"math/rand/v2"

	"github.com/loupe-ml/loupe/tensor"
)

// SceneSize is the side of the detection demo's scenes.
const SceneSize = 64

// Object is one shape of a scene: its class (0 square, 1 disc, 2
// triangle), its box (x1, y1, x2, y2 in pixels, x2 and y2 exclusive) and
// its pixels (SceneSize*SceneSize, row-major).
type Object struct {
	Class int
	Box   [4]float64
	Mask  []bool
}

// Scene draws one to three shapes on a noisy background, as
// detect_train.py does (same distributions: radius 5 to 9, boxes 2 pixels
// apart, centres in different 8-pixel cells, colours 0.6 to 1): an image
// [3, SceneSize, SceneSize] in [0, 1] and its objects.
func Scene(seed uint64) (*tensor.Tensor, []Object) {
	const s = SceneSize
	rng := rand.New(rand.NewPCG(seed, 0x7363656e))
	img := tensor.New(3, s, s)
	for i := range img.F {
		img.F[i] = float32(rng.Float64() * 0.5)
	}
	n := 1 + rng.IntN(3)
	var objs []Object
	for tries := 0; len(objs) < n && tries < 50; tries++ {
		kind := rng.IntN(3)
		r := 5 + rng.IntN(5)
		cy := r + 1 + rng.IntN(s-2*r-2)
		cx := r + 1 + rng.IntN(s-2*r-2)
		box := [4]float64{float64(cx - r), float64(cy - r), float64(cx + r + 1), float64(cy + r + 1)}
		ok := true
		for _, o := range objs {
			b := o.Box
			if box[0] < b[2]+2 && b[0] < box[2]+2 && box[1] < b[3]+2 && b[1] < box[3]+2 {
				ok = false
			}
			ocx, ocy := int(b[0]+b[2])/2, int(b[1]+b[3])/2
			if cx/8 == ocx/8 && cy/8 == ocy/8 {
				ok = false
			}
		}
		if !ok {
			continue
		}
		mask := shapeMask(kind, cy, cx, r, s)
		paintMask(img, mask, rng)
		objs = append(objs, Object{Class: kind, Box: box, Mask: mask})
	}
	return img, objs
}
