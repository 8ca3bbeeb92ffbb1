package kernels

import (
	"runtime"
	"sync"
)

// Sgemm computes C = alpha*op(A)*op(B) + beta*C for row-major matrices,
// where op(X) is X or its transpose. op(A) is m×k, op(B) is k×n and C is
// m×n; lda, ldb and ldc are the row strides of A, B and C as stored. With
// beta 0, C's previous contents are ignored (NaN included). It panics if a
// slice is too short for its dimensions (a programmer error).
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	checkLen("A", a, transA, m, k, lda)
	checkLen("B", b, transB, k, n, ldb)
	if len(c) < (m-1)*ldc+n {
		panic("kernels: C is too short")
	}
	if k == 0 || alpha == 0 {
		scale(beta, m, n, c, ldc)
		return
	}
	backend(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

func checkLen(name string, x []float32, trans bool, rows, cols, ld int) {
	r, cl := rows, cols
	if trans {
		r, cl = cols, rows
	}
	if r > 0 && cl > 0 && (ld < cl || len(x) < (r-1)*ld+cl) {
		panic("kernels: " + name + " is too short or its stride is smaller than its row")
	}
}

// scale sets C = beta*C (beta 0 clears).
func scale(beta float32, m, n int, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}

// smallGemm is a plain loop for problems too small to pay for packing or
// goroutines (few rows, or few operations).
func smallGemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	scale(beta, m, n, c, ldc)
	for i := 0; i < m; i++ {
		crow := c[i*ldc : i*ldc+n]
		if transB && !transA {
			// Rows of A against rows of B: contiguous dot products.
			arow := a[i*lda : i*lda+k]
			for j := range crow {
				brow := b[j*ldb : j*ldb+k]
				var d float32
				for p, av := range arow {
					d += av * brow[p]
				}
				crow[j] += alpha * d
			}
			continue
		}
		for p := 0; p < k; p++ {
			var av float32
			if transA {
				av = a[p*lda+i]
			} else {
				av = a[i*lda+p]
			}
			av *= alpha
			if av == 0 {
				continue
			}
			if transB {
				for j := range crow {
					crow[j] += av * b[j*ldb+p]
				}
			} else {
				brow := b[p*ldb : p*ldb+n]
				for j, bv := range brow {
					crow[j] += av * bv
				}
			}
		}
	}
}

// small reports whether a product is better done by smallGemm: few
// operations, or one or two rows (matrix-vector products such as a dense
// layer on one example, or a recurrent step).
func small(m, n, k int) bool { return m*n*k < 4096 || m <= 2 }

// pool holds packing buffers.
var pool = sync.Pool{New: func() any { return new([]float32) }}

func getBuf(n int) *[]float32 {
	p := pool.Get().(*[]float32)
	if cap(*p) < n {
		*p = make([]float32, n)
	}
	*p = (*p)[:n]
	return p
}

// putBuf returns a buffer from getBuf to the pool (nil is ignored).
func putBuf(b *[]float32) {
	if b != nil {
		pool.Put(b)
	}
}

// pack copies op(X) (rows×cols) into a contiguous row-major buffer, or
// returns X itself when it already is one.
func pack(x []float32, trans bool, rows, cols, ld int) ([]float32, *[]float32) {
	if !trans && ld == cols {
		return x[:rows*cols], nil
	}
	buf := getBuf(rows * cols)
	dst := *buf
	if !trans {
		for i := 0; i < rows; i++ {
			copy(dst[i*cols:(i+1)*cols], x[i*ld:i*ld+cols])
		}
		return dst, buf
	}
	// op(X) = X^T: X is cols×rows with stride ld. Transpose in blocks.
	const bs = 32
	for i0 := 0; i0 < rows; i0 += bs {
		for j0 := 0; j0 < cols; j0 += bs {
			for j := j0; j < min(j0+bs, cols); j++ {
				src := x[j*ld:]
				for i := i0; i < min(i0+bs, rows); i++ {
					dst[i*cols+j] = src[i]
				}
			}
		}
	}
	return dst, buf
}

// ParallelFor splits [0,n) into contiguous ranges run on up to GOMAXPROCS
// goroutines; it runs fn(0, n) inline when n <= grain.
func ParallelFor(n, grain int, fn func(lo, hi int)) {
	p := runtime.GOMAXPROCS(0)
	if n <= grain || p < 2 || n < 2 {
		fn(0, n)
		return
	}
	p = min(p, n, (n+max(grain, 1)-1)/max(grain, 1))
	var wg sync.WaitGroup
	for i := 0; i < p; i++ {
		lo, hi := i*n/p, (i+1)*n/p
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}
