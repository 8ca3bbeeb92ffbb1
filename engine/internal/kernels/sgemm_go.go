package kernels

// BackendName names the GEMM implementation of this build.
func BackendName() string { return "loupe blocked GEMM (" + kernelName() + ")" }

// backend runs the blocked GEMM (small products: a plain loop).
func backend(threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if small(m, n, k) {
		smallGemm(threads, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	blocked(threads, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}
