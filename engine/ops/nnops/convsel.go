package nnops

import "github.com/loupe-ml/loupe/engine/kernels"

// The three convolution primitives the Conv and ConvTranspose kernels call:
// engine/kernels' convolutions, which read the im2col panels straight from
// the input. This package's own GEMM lowering (convgemm.go) and direct
// loops (convkern.go) remain as references for the tests.

func conv2D(p convParams, x, w, bias, y []float32) { kernels.Conv2D(kernels.ConvParams(p), x, w, bias, y) }

func conv2DInputGrad(p convParams, w, gy, gx []float32) {
	kernels.Conv2DInputGrad(kernels.ConvParams(p), w, gy, gx)
}

func conv2DWeightGrad(p convParams, x, gy, gw []float32) {
	kernels.Conv2DWeightGrad(kernels.ConvParams(p), x, gy, gw)
}
