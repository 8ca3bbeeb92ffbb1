// Package kernels holds the dense linear-algebra back end of loupe's
// engine: one row-major float32 GEMM, Sgemm, behind which sits the fastest
// implementation the build allows. The default build is pure Go plus the
// AVX2 assembly of github.com/viterin/vek (no cgo); with -tags openblas,
// Sgemm calls OpenBLAS's cblas_sgemm (Debian: libopenblas-dev).
//
// Measured on the development machine (2 cores, AVX-512), float32 GFLOP/s
// for resnet18's im2col GEMMs (M×N×K):
//
//	size             gonum  vek   openblas
//	64×12544×147     16.5   43.4  see BENCH
//	64×3136×576      18.3   63.2
//	128×784×1152     16.9   61.5
//	256×196×2304     15.0   55.0
//	512×49×4608      17.7   17.9
//
// so vek is the default and gonum is not used.
package kernels
