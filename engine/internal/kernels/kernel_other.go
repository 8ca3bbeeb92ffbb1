//go:build !amd64 || purego

package kernels

// microKernel computes one mr×nr tile, C = alpha*A·B + beta*C + bias; see
// microKernelGo.
func microKernel(kc int, a []float32, rs, cs int, bp []float32, bs int, c []float32, ldc int, alpha, beta float32, bias []float32) {
	microKernelGo(kc, a, rs, cs, bp, bs, c, ldc, alpha, beta, bias)
}

// microKernelHalf is microKernel for only the first nr/2 columns of the
// tile (the portable kernel computes them all).
func microKernelHalf(kc int, a []float32, rs, cs int, bp []float32, bs int, c []float32, ldc int, alpha, beta float32, bias []float32) {
	microKernelGo(kc, a, rs, cs, bp, bs, c, ldc, alpha, beta, bias)
}

// microKernelIdx computes one mr×nr tile (the first nr/2 columns if
// half) with B(p, j) = b[offs[p] + j]; see microKernelIdxGo.
func microKernelIdx(half bool, kc int, a []float32, rs, cs int, b []float32, offs []int32, _ int, c []float32, ldc int, alpha, beta float32, bias []float32) {
	microKernelIdxGo(half, kc, a, rs, cs, b, offs, c, ldc, alpha, beta, bias)
}

// dot returns the dot product of x and y[:len(x)].
func dot(x, y []float32) float32 { return dotGo(x, y) }

// axpy computes y[:len(x)] += alpha*x.
func axpy(alpha float32, x, y []float32) { axpyGo(alpha, x, y) }

// kernelName describes the micro-kernel in use.
func kernelName() string { return "pure Go" }
