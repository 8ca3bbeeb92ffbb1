package attr

import (
	"context"
	"fmt"

	"github.com/loupe-ml/loupe/tensor"
)

// AugSmooth is pytorch-grad-cam's aug_smooth: test-time augmentation of a
// CAM method. The image batch (the first input) is augmented six ways,
// ttach's Compose([HorizontalFlip(), Multiply([0.9, 1, 1.1])]) in its
// order (not flipped, then flipped; times 0.9, 1, 1.1), each augmented
// batch is explained, each cam is flipped back when its image was flipped,
// and the six cams are averaged (in float32, in that order). Without a
// target each augmented image explains its own top class, as the library
// does. All six augmentations go through the method as one batch of 6N
// rows. A target tied to a position (a detector's box, a mask) is not
// moved by the flip: use it only with position-free targets. The result
// has the averaged cam [N, H, W] and no Maps. Cost: the method's on 6N
// examples.
type AugSmooth struct {
	// CAM is the method smoothed: a CAM method of this package (or any
	// method whose first attribution is a map [N, H, W] of the image).
	CAM Method
}

// augFactors are ttach's Multiply factors of pytorch-grad-cam's default.
var augFactors = []float32{0.9, 1, 1.1}

// Attribute computes the smoothed cam.
func (a *AugSmooth) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	if a.CAM == nil {
		return nil, fmt.Errorf("attr: AugSmooth has no CAM method")
	}
	n, err := batchOf(inputs)
	if err != nil {
		return nil, err
	}
	x := inputs[0]
	if x.Rank() != 4 || x.DType != tensor.Float32 {
		return nil, fmt.Errorf("attr: AugSmooth needs a float image batch [N, C, H, W] as the first input, got %s%v", x.DType, x.Shape)
	}
	k := 2 * len(augFactors)
	if n*k > MaxBatch {
		return nil, fmt.Errorf("attr: AugSmooth: %d examples make %d augmented rows, more than %d", n, n*k, MaxBatch)
	}
	h, w := x.Shape[2], x.Shape[3]
	row := x.Len() / n
	aug := tensor.New(append([]int{n * k}, x.Shape[1:]...)...)
	for i := 0; i < k; i++ {
		flip, f := i >= len(augFactors), augFactors[i%len(augFactors)]
		for e := 0; e < n; e++ {
			src := x.F[e*row : (e+1)*row]
			dst := aug.F[(i*n+e)*row : (i*n+e+1)*row]
			for l := 0; l < row/w; l++ {
				for c := 0; c < w; c++ {
					sc := c
					if flip {
						sc = w - 1 - c
					}
					dst[l*w+c] = src[l*w+sc] * f
				}
			}
		}
	}
	in := append([]*tensor.Tensor{aug}, make([]*tensor.Tensor, len(inputs)-1)...)
	for j := 1; j < len(inputs); j++ {
		in[j] = repeat(inputs[j], k, false)
	}
	ao := o
	ao.Target = o.Target.expand(n, k, false)
	ao.Additional = expandExtra(o.Additional, n, k, false)
	ao.Baselines = nil
	r, err := a.CAM.Attribute(ctx, in, ao)
	if err != nil {
		return nil, err
	}
	if len(r.Attributions) == 0 || r.Attributions[0] == nil || r.Attributions[0].Len() != n*k*h*w {
		return nil, fmt.Errorf("attr: AugSmooth: the method's first attribution is not a map [N, H, W] of the image")
	}
	cams := r.Attributions[0].AsFloat32()
	out := tensor.New(n, h, w)
	for i := 0; i < k; i++ {
		flip := i >= len(augFactors)
		for e := 0; e < n; e++ {
			src := cams.F[(i*n+e)*h*w : (i*n+e+1)*h*w]
			dst := out.F[e*h*w : (e+1)*h*w]
			for y := 0; y < h; y++ {
				for c := 0; c < w; c++ {
					sc := c
					if flip {
						sc = w - 1 - c
					}
					dst[y*w+c] += src[y*w+sc]
				}
			}
		}
	}
	for i := range out.F {
		out.F[i] /= float32(k)
	}
	return &Result{Attributions: []*tensor.Tensor{out}}, nil
}
