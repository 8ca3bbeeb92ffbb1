package metrics

import (
	"fmt"

	"github.com/loupe-ml/loupe/tensor"
)

// ShareInMask returns, per example, the share of the positive attribution
// that falls inside a mask (a bool or 0/1 tensor that broadcasts to the
// attribution): how well an explanation localizes a known object, the
// relevance mass accuracy of Arras, Osman and Samek ("CLEVR-XAI: A
// benchmark dataset for the ground truth evaluation of neural network
// explanations", Information Fusion 2022). An example with no positive
// attribution scores 0. Cost: no model evaluation.
func ShareInMask(a, mask *tensor.Tensor) (*tensor.Tensor, error) {
	n, row, in, err := maskRows(a, mask)
	if err != nil {
		return nil, err
	}
	out := tensor.New(n)
	for r := 0; r < n; r++ {
		var inside, all float64
		for e := r * row; e < (r+1)*row; e++ {
			v := a.Float64At(e)
			if v > 0 {
				all += v
				if in[e] {
					inside += v
				}
			}
		}
		if all > 0 {
			out.F[r] = float32(inside / all)
		}
	}
	return out, nil
}

// PointingGame reports, per example, whether the element with the largest
// attribution (the first of ties) lies inside the mask (Zhang et al.,
// "Top-down Neural Attention by Excitation Backprop", ECCV 2016; the paper
// also counts points within 15 pixels of the object: widen the mask for
// that). Cost: no model evaluation.
func PointingGame(a, mask *tensor.Tensor) ([]bool, error) {
	n, row, in, err := maskRows(a, mask)
	if err != nil {
		return nil, err
	}
	hits := make([]bool, n)
	for r := 0; r < n; r++ {
		best := r * row
		for e := r * row; e < (r+1)*row; e++ {
			if a.Float64At(e) > a.Float64At(best) {
				best = e
			}
		}
		hits[r] = in[best]
	}
	return hits, nil
}

// maskRows checks an attribution and its mask and returns the batch size,
// the elements a row and, for every element of the attribution, whether
// the mask (broadcast to its shape) is nonzero there.
func maskRows(a, mask *tensor.Tensor) (n, row int, in []bool, err error) {
	if a == nil || a.Rank() == 0 {
		return 0, 0, nil, fmt.Errorf("metrics: attribution needs a batch dimension")
	}
	if mask == nil {
		return 0, 0, nil, fmt.Errorf("metrics: nil mask")
	}
	if err := a.Check(); err != nil {
		return 0, 0, nil, fmt.Errorf("metrics: attribution: %w", err)
	}
	if err := mask.Check(); err != nil {
		return 0, 0, nil, fmt.Errorf("metrics: mask: %w", err)
	}
	if a.Len() == 0 {
		return 0, 0, nil, fmt.Errorf("metrics: attribution of shape %v is empty", a.Shape)
	}
	bs, err := tensor.BroadcastShape(mask.Shape, a.Shape)
	if err != nil || !tensor.SameShape(bs, a.Shape) {
		return 0, 0, nil, fmt.Errorf("metrics: mask of shape %v does not broadcast to the attribution's %v", mask.Shape, a.Shape)
	}
	in = make([]bool, a.Len())
	st := tensor.BroadcastStrides(mask.Shape, a.Shape)
	idx := make([]int, a.Rank())
	for o := range in {
		j := 0
		for d, v := range idx {
			j += v * st[d]
		}
		in[o] = mask.Float64At(j) != 0
		for d := len(idx) - 1; d >= 0; d-- {
			idx[d]++
			if idx[d] < a.Shape[d] {
				break
			}
			idx[d] = 0
		}
	}
	n = a.Shape[0]
	return n, a.Len() / n, in, nil
}
