//go:build !openblas

package kernels

import "github.com/viterin/vek/vek32"

// BackendName names the GEMM implementation of this build.
func BackendName() string { return "vek (Go + AVX2 assembly)" }

// backend packs op(A) and op(B) into contiguous row-major matrices and
// multiplies them with vek, which uses both cores and AVX2 when the CPU
// has it (and plain Go otherwise).
func backend(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if small(m, n, k) {
		smallGemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	if n < 64 && m >= 4*n {
		// vek runs along the rows of C; with short rows it is slow, so
		// compute C^T = op(B)^T op(A)^T, whose rows are long, and
		// transpose back.
		pa, ba := pack(b, !transB, n, k, ldb)
		pb, bb := pack(a, !transA, k, m, lda)
		bo := getBuf(m * n)
		out := *bo
		vek32.MatMul_Into(out, pa, pb, k)
		for i := 0; i < m; i++ {
			crow := c[i*ldc : i*ldc+n]
			for j := range crow {
				v := alpha * out[j*m+i]
				if beta != 0 {
					v += beta * crow[j]
				}
				crow[j] = v
			}
		}
		pool.Put(bo)
		putBuf(ba)
		putBuf(bb)
		return
	}
	pa, ba := pack(a, transA, m, k, lda)
	pb, bb := pack(b, transB, k, n, ldb)
	direct := beta == 0 && alpha == 1 && ldc == n
	var out []float32
	var bo *[]float32
	if direct {
		out = c[:m*n]
	} else {
		bo = getBuf(m * n)
		out = *bo
	}
	vek32.MatMul_Into(out, pa, pb, k)
	if !direct {
		for i := 0; i < m; i++ {
			crow := c[i*ldc : i*ldc+n]
			orow := out[i*n : (i+1)*n]
			if beta == 0 {
				for j, v := range orow {
					crow[j] = alpha * v
				}
			} else {
				for j, v := range orow {
					crow[j] = alpha*v + beta*crow[j]
				}
			}
		}
		pool.Put(bo)
	}
	putBuf(ba)
	putBuf(bb)
}
