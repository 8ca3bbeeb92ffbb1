//go:build amd64 && !purego

package kernels

// maxIntoAVX2 is MaxInto for n (a multiple of 8) elements.
//
//go:noescape
func maxIntoAVX2(dst, src *float32, n int)

// reluGradAVX2 is ReluGrad for n (a multiple of 8) elements.
//
//go:noescape
func reluGradAVX2(dst, grad, y *float32, n int)
