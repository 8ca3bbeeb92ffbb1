package nnops

// The three convolution primitives the Conv and ConvTranspose kernels call.
// They use this package's GEMM lowering (over kernels.Sgemm) until
// engine/kernels provides Conv2D, Conv2DInputGrad and Conv2DWeightGrad with
// the same signatures; switching is one line each.

func conv2D(p convParams, x, w, bias, y []float32) { conv2DGemm(p, x, w, bias, y) }

func conv2DInputGrad(p convParams, w, gy, gx []float32) { conv2DInputGradGemm(p, w, gy, gx) }

func conv2DWeightGrad(p convParams, x, gy, gw []float32) { conv2DWeightGradGemm(p, x, gy, gw) }
