//go:build !amd64 || purego

package kernels

// useAVX2 is false without the assembly kernels.
const useAVX2 = false

func maxIntoAVX2(dst, src *float32, n int) { panic("kernels: no AVX2") }

func reluGradAVX2(dst, grad, y *float32, n int) { panic("kernels: no AVX2") }
