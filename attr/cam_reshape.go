package attr

import (
	"fmt"
	"math"

	"github.com/loupe-ml/loupe/tensor"
)

// TokenGrid declares how a CAM method reads a layer that is not a
// convolution's [N, C, h, w]: a transformer's tokens [N, T, C], of which
// the first Skip are not patches (a ViT's class token) and the others are
// a Height x Width grid in row-major order, or, with ChannelsLast, a grid
// [N, h, w, C] (Swin). It is pytorch-grad-cam's reshape_transform for
// those models, declared rather than written as a function: the layer's
// activations and gradients are read as [N, C, h, w]; AblationCAM ablates
// a channel in every patch token (the skipped tokens keep their values).
type TokenGrid struct {
	// Skip is the number of leading tokens that are not patches.
	Skip int
	// Height and Width are the patch grid's size; 0 and 0 take a square
	// grid of the tokens left.
	Height, Width int
	// ChannelsLast reads a layer [N, h, w, C] instead of tokens.
	ChannelsLast bool
}

// grid returns the patch grid's size for a layer value's shape.
func (g *TokenGrid) grid(shape []int) (h, w, c int, err error) {
	if g.ChannelsLast {
		if len(shape) != 4 {
			return 0, 0, 0, fmt.Errorf("a channels-last grid needs a layer [N, h, w, C], got %v", shape)
		}
		if g.Skip != 0 {
			return 0, 0, 0, fmt.Errorf("a channels-last grid has no tokens to skip (Skip %d)", g.Skip)
		}
		return shape[1], shape[2], shape[3], nil
	}
	if len(shape) != 3 {
		return 0, 0, 0, fmt.Errorf("a token grid needs a layer [N, tokens, C], got %v", shape)
	}
	t := shape[1] - g.Skip
	if g.Skip < 0 || t <= 0 {
		return 0, 0, 0, fmt.Errorf("skipping %d of %d tokens leaves no patch", g.Skip, shape[1])
	}
	h, w = g.Height, g.Width
	if h == 0 && w == 0 {
		h = int(math.Round(math.Sqrt(float64(t))))
		w = h
	}
	if h <= 0 || w <= 0 || h*w != t {
		return 0, 0, 0, fmt.Errorf("%d patch tokens do not make a %dx%d grid", t, h, w)
	}
	return h, w, shape[2], nil
}

// apply reads a layer's value (or gradient) as [N, C, h, w].
func (g *TokenGrid) apply(v *tensor.Tensor) (*tensor.Tensor, error) {
	if v.DType != tensor.Float32 {
		return nil, fmt.Errorf("layer of type %s", v.DType)
	}
	h, w, c, err := g.grid(v.Shape)
	if err != nil {
		return nil, err
	}
	n := v.Shape[0]
	row := v.Len() / max(n, 1)
	out := tensor.New(n, c, h, w)
	for e := 0; e < n; e++ {
		src := v.F[e*row+g.Skip*c : (e+1)*row]
		dst := out.F[e*c*h*w : (e+1)*c*h*w]
		for p := 0; p < h*w; p++ {
			for ch := 0; ch < c; ch++ {
				dst[ch*h*w+p] = src[p*c+ch]
			}
		}
	}
	return out, nil
}

// ablate sets channel ch of every patch of one example's layer value dst
// (the layer's shape without the batch, row) to zero.
func (g *TokenGrid) ablate(dst []float32, row []int, ch int) {
	c := row[len(row)-1]
	skip := g.Skip
	if g.ChannelsLast {
		skip = 0
	}
	for p := skip * c; p+ch < len(dst); p += c {
		dst[p+ch] = 0
	}
}
