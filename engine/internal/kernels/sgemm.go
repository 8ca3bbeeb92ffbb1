package kernels

import (
	"runtime"
	"sync"

	"github.com/loupe-ml/loupe/internal/par"
)

// Sgemm computes C = alpha*op(A)*op(B) + beta*C for row-major matrices,
// where op(X) is X or its transpose. op(A) is m×k, op(B) is k×n and C is
// m×n; lda, ldb and ldc are the row strides of A, B and C as stored. With
// beta 0, C's previous contents are ignored (NaN included); with alpha 0
// or k 0, A and B are not read. It panics on negative dimensions, strides
// shorter than rows, or slices too short for their dimensions (programmer
// errors). Large products run on GOMAXPROCS goroutines.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic("kernels: negative matrix dimension")
	}
	if m == 0 || n == 0 {
		return
	}
	checkLen("A", a, transA, m, k, lda)
	checkLen("B", b, transB, k, n, ldb)
	if ldc < n || len(c) < (m-1)*ldc+n {
		panic("kernels: C is too short or its stride is smaller than its row")
	}
	gemm(0, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// gemm is Sgemm without the argument checks, on at most threads
// goroutines. threads 0 means automatic: GOMAXPROCS for products large
// enough to gain from it, else 1. Backends that thread by themselves
// (OpenBLAS) ignore it.
func gemm(threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		scale(beta, m, n, c, ldc)
		return
	}
	backend(threads, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
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

// smallGemm computes products too small or too flat for the blocked
// GEMM (few operations, or one or two rows of C, such as a dense layer on
// one example) as dot products (transposed B) or row updates C_i +=
// a·B_p (B as stored), with AVX2 where the CPU has it, on up to threads
// goroutines (0: automatic). Large ones are split over goroutines by
// columns of C (transposed B) or by the depth.
func smallGemm(threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	// These products are bound by reading B; a second goroutine only
	// helps when B is large and each goroutine reads a contiguous part.
	workers := threads
	if threads <= 0 {
		workers = runtime.GOMAXPROCS(0)
		if m*n*k < smallParallelMACs {
			workers = 1
		}
	}
	if workers < 2 {
		smallCols(transA, transB, m, k, alpha, a, lda, b, ldb, beta, c, ldc, 0, n)
		return
	}
	if transB {
		// Columns of C are rows of B. Split at multiples of 16 columns
		// (64 bytes) so that no two goroutines write to one cache line.
		panels := (n + nr - 1) / nr
		par.Range(panels, max(1, panels/(4*workers)), workers, func(lo, hi int) {
			smallCols(transA, transB, m, k, alpha, a, lda, b, ldb, beta, c, ldc, lo*nr, min(hi*nr, n))
		})
		return
	}
	// Split the depth: worker 0 adds its parts of the sum into C, worker
	// w > 0 into its own m×n buffer, and the buffers are added to C.
	tasks := min(k, 4*workers)
	buf := getBuf((workers - 1) * m * n)
	used := make([]bool, workers)
	par.Tasks(tasks, workers, func(w int, q *par.Queue) {
		for t := q.Next(-1); t >= 0; t = q.Next(t) {
			lo, hi := t*k/tasks, (t+1)*k/tasks
			ao, bo := lo, lo*ldb
			if transA {
				ao = lo * lda
			}
			dst, ld, bt := c, ldc, beta
			if w > 0 {
				dst, ld, bt = (*buf)[(w-1)*m*n:w*m*n], n, 0
			}
			if used[w] {
				bt = 1
			}
			smallCols(transA, false, m, hi-lo, alpha, a[ao:], lda, b[bo:], ldb, bt, dst, ld, 0, n)
			used[w] = true
		}
	})
	if !used[0] {
		scale(beta, m, n, c, ldc)
	}
	for w := 1; w < workers; w++ {
		if !used[w] {
			continue
		}
		part := (*buf)[(w-1)*m*n : w*m*n]
		for r := 0; r < m; r++ {
			axpy(1, part[r*n:(r+1)*n], c[r*ldc:r*ldc+n])
		}
	}
	putBuf(buf)
}

// smallParallelMACs is the size (m·n·k) from which smallGemm uses more
// than one goroutine (measured: 1×4096×1024 is faster on one).
const smallParallelMACs = 1 << 22

// smallCols is smallGemm for columns [j0, j1) of C.
func smallCols(transA, transB bool, m, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int, j0, j1 int) {
	// Rows of A read with stride: A(i, p) = a[i*ars + p*acs].
	ars, acs := lda, 1
	if transA {
		ars, acs = 1, lda
	}
	var tmp *[]float32
	for i := 0; i < m; i++ {
		crow := c[i*ldc+j0 : i*ldc+j1]
		if transB {
			// C(i, j) = alpha * <op(A)_i, B_j> + beta*C(i, j).
			var arow []float32
			if transA {
				if tmp == nil {
					tmp = getBuf(k)
				}
				arow = *tmp
				for p := range arow {
					arow[p] = a[p*lda+i]
				}
			} else {
				arow = a[i*lda : i*lda+k]
			}
			for j := range crow {
				o := (j0 + j) * ldb
				v := alpha * dot(arow, b[o:o+k])
				if beta != 0 {
					v += beta * crow[j]
				}
				crow[j] = v
			}
			continue
		}
		if len(crow) >= 32 {
			// Long rows: C_i = beta*C_i + sum_p (alpha*A(i,p)) B_p.
			scale(beta, 1, len(crow), crow, 0)
			for p := 0; p < k; p++ {
				if av := alpha * a[i*ars+p*acs]; av != 0 {
					o := p*ldb + j0
					axpy(av, b[o:o+len(crow)], crow)
				}
			}
			continue
		}
		// Short rows: four columns at a time, summed in registers.
		j := 0
		for ; j+4 <= len(crow); j += 4 {
			var s0, s1, s2, s3 float32
			o := j0 + j
			for p := 0; p < k; p++ {
				av := a[i*ars+p*acs]
				bb := b[o : o+4 : o+4]
				s0 += av * bb[0]
				s1 += av * bb[1]
				s2 += av * bb[2]
				s3 += av * bb[3]
				o += ldb
			}
			cc := crow[j : j+4 : j+4]
			if beta == 0 {
				cc[0], cc[1], cc[2], cc[3] = alpha*s0, alpha*s1, alpha*s2, alpha*s3
			} else {
				cc[0] = alpha*s0 + beta*cc[0]
				cc[1] = alpha*s1 + beta*cc[1]
				cc[2] = alpha*s2 + beta*cc[2]
				cc[3] = alpha*s3 + beta*cc[3]
			}
		}
		for ; j < len(crow); j++ {
			var s float32
			o := j0 + j
			for p := 0; p < k; p++ {
				s += a[i*ars+p*acs] * b[o]
				o += ldb
			}
			if beta == 0 {
				crow[j] = alpha * s
			} else {
				crow[j] = alpha*s + beta*crow[j]
			}
		}
	}
	putBuf(tmp)
}

func dotGo(x, y []float32) float32 {
	y = y[:len(x)]
	if len(x) < 4 {
		var s float32
		for i, v := range x {
			s += v * y[i]
		}
		return s
	}
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		s0 += x[i] * y[i]
		s1 += x[i+1] * y[i+1]
		s2 += x[i+2] * y[i+2]
		s3 += x[i+3] * y[i+3]
	}
	for ; i < len(x); i++ {
		s0 += x[i] * y[i]
	}
	return (s0 + s1) + (s2 + s3)
}

func axpyGo(alpha float32, x, y []float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += alpha * v
	}
}

// small reports whether a product is better done by smallGemm: few
// operations, or one or two rows (matrix-vector products such as a dense
// layer on one example, or a recurrent step).
func small(m, n, k int) bool { return m*n*k < smallMACs || m <= 2 }

// smallMACs is the size (m·n·k) below which a product always runs as a
// plain loop.
const smallMACs = 4096

// pool holds scratch buffers (packed panels, im2col blocks, padded
// inputs, partial sums), so that repeated calls do not allocate.
var pool = sync.Pool{New: func() any { return new([]float32) }}

// getBuf returns a pooled buffer of n floats with arbitrary contents.
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

// int32Pool holds offset tables.
var int32Pool = sync.Pool{New: func() any { return new([]int32) }}

func getInt32Buf(n int) *[]int32 {
	p := int32Pool.Get().(*[]int32)
	if cap(*p) < n {
		*p = make([]int32, n)
	}
	*p = (*p)[:n]
	return p
}

func putInt32Buf(b *[]int32) { int32Pool.Put(b) }
