package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func naive(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				var av, bv float32
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += float64(av) * float64(bv)
			}
			old := float64(0)
			if beta != 0 {
				old = float64(beta) * float64(c[i*ldc+j])
			}
			c[i*ldc+j] = float32(float64(alpha)*s + old)
		}
	}
}

func rnd(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

func TestSgemm(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, sz := range [][3]int{{1, 1, 1}, {3, 5, 7}, {17, 33, 9}, {64, 70, 65}, {130, 40, 200}, {300, 20, 70}, {1, 300, 200}, {2, 77, 130}, {150, 33, 300}, {7, 3100, 20}, {13, 17, 600}, {2, 1030, 2050}} {
		m, n, k := sz[0], sz[1], sz[2]
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				abs := [][2]float32{{1, 0}, {0.5, 0}, {1, 1}, {-2, 0.25}}
				if m*n*k > 1<<18 {
					abs = [][2]float32{{1, 0}, {-2, 0.25}} // keep -race fast
				}
				for _, ab := range abs {
					lda, ldb, ldc := k+3, n+1, n+2
					if ta {
						lda = m + 3
					}
					if tb {
						ldb = k + 1
					}
					ra, rb := m, k
					if ta {
						ra = k
					}
					if tb {
						rb = n
					}
					a, b := rnd(r, ra*lda), rnd(r, rb*ldb)
					c := rnd(r, m*ldc)
					if ab[1] == 0 {
						for i := range c {
							c[i] = float32(math.NaN())
						}
					}
					want := append([]float32(nil), c...)
					naive(ta, tb, m, n, k, ab[0], a, lda, b, ldb, ab[1], want, ldc)
					c0 := append([]float32(nil), c...)
					Sgemm(ta, tb, m, n, k, ab[0], a, lda, b, ldb, ab[1], c, ldc)
					check := func(threads int, c []float32) {
						t.Helper()
						for i := 0; i < m; i++ {
							for j := 0; j < n; j++ {
								g, w := c[i*ldc+j], want[i*ldc+j]
								if math.Abs(float64(g-w)) > 1e-4*math.Sqrt(float64(k))*(1+math.Abs(float64(w))) {
									t.Fatalf("%v transA=%v transB=%v alpha,beta=%v threads=%d: C[%d,%d] = %g, want %g", sz, ta, tb, ab, threads, i, j, g, w)
								}
							}
						}
					}
					check(0, c)
					// Force a split over goroutines whatever the size.
					threads := 2 + (m+n+k)%2
					gemm(threads, ta, tb, m, n, k, ab[0], a, lda, b, ldb, ab[1], c0, ldc)
					check(threads, c0)
				}
			}
		}
	}
}

func TestSgemmEdgeCases(t *testing.T) {
	nan := float32(math.NaN())
	a := []float32{nan, nan, nan, nan}
	for _, tc := range []struct {
		name        string
		k           int
		alpha, beta float32
		want        float32
	}{
		{"k=0 beta=0 clears NaN", 0, 1, 0, 0},
		{"k=0 beta=2 scales", 0, 1, 2, 6},
		{"alpha=0 ignores A and B", 2, 0, 2, 6},
	} {
		c := []float32{3, 3, 3, 3}
		if tc.beta == 0 {
			c = []float32{nan, nan, nan, nan}
		}
		Sgemm(false, false, 2, 2, tc.k, tc.alpha, a, 2, a, 2, tc.beta, c, 2)
		for i, v := range c {
			if v != tc.want {
				t.Errorf("%s: C[%d] = %g, want %g", tc.name, i, v, tc.want)
			}
		}
	}
	// Empty products touch nothing.
	Sgemm(false, false, 0, 5, 3, 1, nil, 3, make([]float32, 15), 5, 0, nil, 5)
	Sgemm(true, true, 4, 0, 3, 1, make([]float32, 12), 4, nil, 3, 0, nil, 1)
	defer func() {
		if recover() == nil {
			t.Fatal("no panic for a short A")
		}
	}()
	Sgemm(false, false, 3, 3, 3, 1, make([]float32, 8), 3, make([]float32, 9), 3, 0, make([]float32, 9), 3)
}

func TestBackendName(t *testing.T) {
	if BackendName() == "" {
		t.Fatal("empty backend name")
	}
	t.Log(BackendName())
}

// BenchmarkSgemm measures resnet18's im2col GEMM sizes (M×N×K), the
// transposed forms the convolution gradients use, and small dense-layer
// shapes (one example: M=1).
func BenchmarkSgemm(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range []struct {
		m, n, k        int
		transA, transB bool
	}{
		{64, 12544, 147, false, false},
		{64, 3136, 576, false, false},
		{128, 784, 1152, false, false},
		{256, 196, 2304, false, false},
		{512, 49, 4608, false, false},
		{576, 3136, 64, true, false}, // input gradient of the 3x3 64->64 layer
		{64, 576, 3136, false, true}, // its weight gradient
		{10, 8, 6, false, false},
		{64, 256, 128, false, false},
		{1024, 1024, 1024, false, false},
		{1, 1000, 512, false, false},
		{1, 1000, 512, false, true}, // dense layer, ONNX Gemm transB=1
	} {
		m, n, k := s.m, s.n, s.k
		a, bb, c := rnd(r, m*k), rnd(r, k*n), make([]float32, m*n)
		lda, ldb := k, n
		if s.transA {
			lda = m
		}
		if s.transB {
			ldb = k
		}
		name := fmt.Sprintf("%dx%dx%d", m, n, k)
		if s.transA {
			name += "_TA"
		}
		if s.transB {
			name += "_TB"
		}
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				Sgemm(s.transA, s.transB, m, n, k, 1, a, lda, bb, ldb, 0, c, n)
			}
			b.ReportMetric(float64(2*m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
