package detect

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/tensor"
)

// DRISE explains detections as a black box (Petsiuk et al., "Black-box
// Explanation of Object Detectors via Saliency Maps", CVPR 2021): it
// multiplies the image by random smooth masks (RISE's: a coarse random
// binary grid, upsampled bilinearly and shifted), runs the detector on
// each masked image, and weighs each mask, for each target detection, by
// the best similarity of the masked image's predictions to it: the IoU of
// the boxes times the prediction's objectness times the cosine of the
// class vectors (the target's is one-hot). A detection's map is the
// weighted sum of the masks over Masks·Keep. Cost: Masks model
// evaluations, BatchSize at a time, whatever the number of detections.
type DRISE struct {
	Detector *Detector
	// Masks is the number of random masks (0: 1000; the paper uses
	// 5000).
	Masks int
	// Cells is the side of the random grid, in cells (0: 16).
	Cells int
	// Keep is the probability that a cell is kept (0: 0.5).
	Keep float64
	// BatchSize is how many masked images go into one model call (0: 32).
	BatchSize int
	// Seed seeds the masks.
	Seed uint64
	// Progress, if set, is called after each batch with the masks done.
	Progress attr.Progress
}

// Attribute returns the saliency maps [len(dets), H, W] of the detections
// of one image x [1, C, H, W].
func (r *DRISE) Attribute(ctx context.Context, x *tensor.Tensor, dets []Detection) (*tensor.Tensor, error) {
	if r.Detector == nil || r.Detector.Net == nil {
		return nil, fmt.Errorf("detect: D-RISE has no detector")
	}
	if err := oneImage(x); err != nil {
		return nil, err
	}
	if len(dets) == 0 {
		return nil, fmt.Errorf("detect: no detection to explain")
	}
	n, cells, keep, bs := r.Masks, r.Cells, r.Keep, r.BatchSize
	if n == 0 {
		n = 1000
	}
	if cells == 0 {
		cells = 16
	}
	if keep == 0 {
		keep = 0.5
	}
	if bs == 0 {
		bs = 32
	}
	c, h, w := x.Shape[1], x.Shape[2], x.Shape[3]
	switch {
	case n < 1 || n > 1_000_000:
		return nil, fmt.Errorf("detect: D-RISE Masks = %d, want 1 to 1000000", n)
	case cells < 1 || cells > min(h, w):
		return nil, fmt.Errorf("detect: D-RISE Cells = %d, want 1 to %d (the image's side)", cells, min(h, w))
	case !(keep > 0 && keep <= 1):
		return nil, fmt.Errorf("detect: D-RISE Keep = %g, want a probability in (0, 1]", keep)
	case bs < 1 || bs > attr.MaxBatch:
		return nil, fmt.Errorf("detect: D-RISE BatchSize = %d, want 1 to %d", bs, attr.MaxBatch)
	}
	for _, d := range dets {
		if d.Class < 0 || d.Class >= len(r.Detector.Config.Classes) {
			return nil, fmt.Errorf("detect: detection of class %d; the detector has %d classes", d.Class, len(r.Detector.Config.Classes))
		}
	}
	rng := rand.New(rand.NewPCG(r.Seed, 0x64726973))
	sal := tensor.New(len(dets), h, w)
	acc := make([]float64, len(dets)*h*w)
	hw := h * w
	for done := 0; done < n; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		k := min(bs, n-done)
		masks := make([][]float32, k)
		batch := tensor.New(k, c, h, w)
		for i := range masks {
			masks[i] = riseMask(rng, h, w, cells, keep)
			for ch := 0; ch < c; ch++ {
				dst := batch.F[(i*c+ch)*hw : (i*c+ch+1)*hw]
				src := x.F[ch*hw : (ch+1)*hw]
				for p, m := range masks[i] {
					dst[p] = src[p] * m
				}
			}
		}
		out, err := r.Detector.Net.Eval(ctx, []*tensor.Tensor{batch})
		if err != nil {
			return nil, fmt.Errorf("detect: D-RISE: %w", err)
		}
		out = out.AsFloat32()
		if out.Rank() < 1 || out.Shape[0] != k {
			return nil, fmt.Errorf("detect: D-RISE: the model returned shape %v for %d images", out.Shape, k)
		}
		row := out.Len() / k
		for i := 0; i < k; i++ {
			preds, err := r.Detector.Config.Decode(out.Shape[1:], out.F[i*row:(i+1)*row])
			if err != nil {
				return nil, err
			}
			for t, d := range dets {
				wt := bestSimilarity(d, preds)
				if wt == 0 {
					continue
				}
				a := acc[t*hw : (t+1)*hw]
				for p, m := range masks[i] {
					a[p] += wt * float64(m)
				}
			}
		}
		done += k
		if r.Progress != nil {
			r.Progress(done, n)
		}
	}
	norm := 1 / (float64(n) * keep)
	for i, v := range acc {
		sal.F[i] = float32(v * norm)
	}
	return sal, nil
}

// bestSimilarity is D-RISE's weight of a masked image for a target
// detection: the best, over the predictions, of IoU · objectness ·
// cosine(one-hot class, class probabilities).
func bestSimilarity(d Detection, preds []Prediction) float64 {
	best := 0.0
	for _, p := range preds {
		if p.Objectness <= 0 {
			continue
		}
		var norm float64
		for _, s := range p.Scores {
			norm += s * s
		}
		if norm == 0 || p.Scores[d.Class] <= 0 {
			continue
		}
		iou, _ := attr.IoU(d.Box, p.Box)
		if s := iou * p.Objectness * p.Scores[d.Class] / math.Sqrt(norm); s > best {
			best = s
		}
	}
	return best
}

// riseMask draws one RISE mask [h*w]: a cells x cells grid of cells kept
// with probability keep, upsampled bilinearly to cells+1 cells of the
// image's cell size and cropped at a random shift of up to one cell.
func riseMask(rng *rand.Rand, h, w, cells int, keep float64) []float32 {
	g := cells + 1
	grid := make([]float32, g*g)
	for i := range grid {
		if rng.Float64() < keep {
			grid[i] = 1
		}
	}
	ch := float64(h) / float64(cells)
	cw := float64(w) / float64(cells)
	sy, sx := rng.Float64()*ch, rng.Float64()*cw
	m := make([]float32, h*w)
	for y := 0; y < h; y++ {
		fy := (float64(y)+0.5+sy)/ch - 0.5
		y0 := int(math.Floor(fy))
		ty := float32(fy - float64(y0))
		y0c, y1c := clamp(y0, g), clamp(y0+1, g)
		for x := 0; x < w; x++ {
			fx := (float64(x)+0.5+sx)/cw - 0.5
			x0 := int(math.Floor(fx))
			tx := float32(fx - float64(x0))
			x0c, x1c := clamp(x0, g), clamp(x0+1, g)
			top := grid[y0c*g+x0c]*(1-tx) + grid[y0c*g+x1c]*tx
			bot := grid[y1c*g+x0c]*(1-tx) + grid[y1c*g+x1c]*tx
			m[y*w+x] = top*(1-ty) + bot*ty
		}
	}
	return m
}

func clamp(i, n int) int { return min(max(i, 0), n-1) }
