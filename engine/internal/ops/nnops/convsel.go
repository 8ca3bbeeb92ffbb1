package nnops

import "github.com/loupe-ml/loupe/engine/internal/kernels"

// The three convolution primitives the Conv and ConvTranspose kernels call
// are engine/internal/kernels' convolutions, which read the im2col panels
// straight from the input; direct loops in convref_test.go check them.

// convParams describes one 2-D convolution (1-D ones have H = KH = 1).
type convParams struct {
	N, C, H, W                                                  int
	M                                                           int // output channels
	KH, KW                                                      int
	StrideH, StrideW, PadT, PadL, PadB, PadR, DilH, DilW, Group int
}

// OutH returns the output height.
func (p convParams) OutH() int {
	return (p.H+p.PadT+p.PadB-(p.KH-1)*p.DilH-1)/p.StrideH + 1
}

// OutW returns the output width.
func (p convParams) OutW() int {
	return (p.W+p.PadL+p.PadR-(p.KW-1)*p.DilW-1)/p.StrideW + 1
}

func conv2D(p convParams, x, w, bias, y []float32) {
	kernels.Conv2D(kernels.ConvParams(p), x, w, bias, y)
}

func conv2DInputGrad(p convParams, w, gy, gx []float32) {
	kernels.Conv2DInputGrad(kernels.ConvParams(p), w, gy, gx)
}

func conv2DWeightGrad(p convParams, x, gy, gw []float32) {
	kernels.Conv2DWeightGrad(kernels.ConvParams(p), x, gy, gw)
}
