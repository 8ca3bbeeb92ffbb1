// Package kernels holds the dense linear algebra of loupe's engine: one
// row-major float32 GEMM, Sgemm, and convolutions built on it (Conv2D,
// Conv2DInputGrad, Conv2DWeightGrad), with ParallelFor to spread work over
// the cores.
//
// The default build is a blocked GEMM with a 6×16 register-blocked
// micro-kernel in AVX2+FMA assembly (chosen at start-up from CPUID, with a
// Go fallback elsewhere); with -tags openblas, Sgemm calls OpenBLAS's
// cblas_sgemm (Debian: libopenblas-dev).
//
// Measured on the development machine (2 cores), float32 GFLOP/s on
// resnet18's im2col products (M×N×K):
//
//	size            gonum  vek   this package  OpenBLAS
//	64×12544×147    16.5   43.4  115           165
//	64×3136×576     18.3   63.2  132           171
//	128×784×1152    16.9   61.5  151           174
//	256×196×2304    15.0   55.0  134           151
//	512×49×4608     17.7   17.9  111            96
package kernels
