package attr_test

import (
	"context"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/internal/demo"
	"github.com/loupe-ml/loupe/tensor"
)

// GradCAM on a model whose class evidence sits in one quadrant of the image
// lights that quadrant: the demo model, on shapes drawn in each quadrant.
func TestGradCamLightsTheQuadrant(t *testing.T) {
	m, err := demo.Model()
	if err != nil {
		t.Fatal(err)
	}
	nt, _ := attr.NewNet(m)
	tested := 0
	for seed := uint64(0); seed < 200 && tested < 8; seed++ {
		class := int(seed % 3)
		img, mask := demo.Draw(class, seed)
		// Which quadrant holds the whole shape, if one does.
		quad := -1
		for i, in := range mask {
			if !in {
				continue
			}
			q := (i/demo.Size)/(demo.Size/2)*2 + (i%demo.Size)/(demo.Size/2)
			if quad >= 0 && q != quad {
				quad = -2
				break
			}
			quad = q
		}
		if quad < 0 {
			continue
		}
		tested++
		x, _ := img.Reshape(1, 3, demo.Size, demo.Size)
		r, err := (&attr.LayerGradCam{Net: nt, ReluAttributions: true}).Attribute(context.Background(), []*tensor.Tensor{x}, attr.Options{Target: attr.Class(class)})
		if err != nil {
			t.Fatal(err)
		}
		cam := r.Attributions[0] // [1, 1, 16, 16] at the last convolution
		h, w := cam.Shape[2], cam.Shape[3]
		var sums [4]float64
		all := 0.0
		for i, v := range cam.F {
			sums[(i/w)/(h/2)*2+(i%w)/(w/2)] += float64(v)
			all += float64(v)
		}
		for q, s := range sums {
			if q != quad && s >= sums[quad] {
				t.Errorf("seed %d: a %s in quadrant %d, but quadrant %d gets more of the Grad-CAM map (%.2f vs %.2f of it)", seed, demo.Classes[class], quad, q, s/all, sums[quad]/all)
			}
		}
		if sums[quad]/all < 0.3 {
			t.Errorf("seed %d: the shape's quadrant gets %.2f of the map, want well above a quarter", seed, sums[quad]/all)
		}
	}
	if tested < 4 {
		t.Fatalf("only %d images with the shape in one quadrant", tested)
	}
}
