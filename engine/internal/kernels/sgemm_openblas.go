//go:build openblas

package kernels

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>
*/
import "C"

import "unsafe"

// batchParallel reports whether convolutions should split the batch
// across goroutines, each running single-threaded GEMMs.
const batchParallel = false

// fusedConv reports whether Conv2D builds im2col blocks straight into
// the packed layout of this package's micro-kernel, or else calls the
// backend on whole im2col matrices.
const fusedConv = false

// BackendName names the GEMM implementation of this build.
func BackendName() string { return "OpenBLAS (cgo)" }

// backend calls cblas_sgemm (tiny products: a plain loop, cheaper than
// the cgo call); OpenBLAS chooses its own thread count
// (OPENBLAS_NUM_THREADS).
func backend(threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m*n*k < smallMACs {
		smallGemm(threads, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	if m == 1 {
		// A matrix-vector product: C^T = alpha*op(B)^T a + beta*C^T.
		inc := 1
		if transA {
			inc = lda
		}
		tr, rows, cols := uint32(C.CblasTrans), k, n // op(B) = B (k×n)
		if transB {
			tr, rows, cols = C.CblasNoTrans, n, k // B is n×k
		}
		C.cblas_sgemv(C.CblasRowMajor, C.enum_CBLAS_TRANSPOSE(tr), C.blasint(rows), C.blasint(cols),
			C.float(alpha), (*C.float)(unsafe.Pointer(&b[0])), C.blasint(ldb),
			(*C.float)(unsafe.Pointer(&a[0])), C.blasint(inc),
			C.float(beta), (*C.float)(unsafe.Pointer(&c[0])), 1)
		return
	}
	ta, tb := uint32(C.CblasNoTrans), uint32(C.CblasNoTrans)
	if transA {
		ta = C.CblasTrans
	}
	if transB {
		tb = C.CblasTrans
	}
	C.cblas_sgemm(C.CblasRowMajor, C.enum_CBLAS_TRANSPOSE(ta), C.enum_CBLAS_TRANSPOSE(tb), C.blasint(m), C.blasint(n), C.blasint(k),
		C.float(alpha), (*C.float)(unsafe.Pointer(&a[0])), C.blasint(lda),
		(*C.float)(unsafe.Pointer(&b[0])), C.blasint(ldb),
		C.float(beta), (*C.float)(unsafe.Pointer(&c[0])), C.blasint(ldc))
}
