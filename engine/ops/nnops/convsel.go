package nnops

// The three convolution primitives the Conv and ConvTranspose kernels call.
// They point at this package's direct loops until engine/kernels is ready.

func conv2D(p convParams, x, w, bias, y []float32) { conv2DDirect(p, x, w, bias, y) }

func conv2DInputGrad(p convParams, w, gy, gx []float32) { conv2DInputGradDirect(p, w, gy, gx) }

func conv2DWeightGrad(p convParams, x, gy, gw []float32) { conv2DWeightGradDirect(p, x, gy, gw) }
