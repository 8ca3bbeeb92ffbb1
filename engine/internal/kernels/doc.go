// Package kernels holds the dense linear algebra of loupe's engine: one
// row-major float32 GEMM, Sgemm, convolutions built on its micro-kernels
// (Conv2D, Conv2DInputGrad, Conv2DWeightGrad).
//
// # Backends
//
// The default build needs no cgo. Sgemm is a blocked GEMM whose 6×16
// register-blocked micro-kernel is AVX2+FMA assembly on amd64 CPUs that
// have it (checked once with CPUID), and Go elsewhere or with -tags
// purego. The micro-kernel reads A in place through row and column strides
// (no packing, so transposes are free), and B in place too when C has few
// rows, else packed into 16-column panels. Products with one or two rows
// run as dot products or AXPYs, also in assembly. BackendName reports
// which. (An OpenBLAS build, -tags openblas, was removed: measured side by
// side with PyTorch it was 1.2 to 2.8 times slower than this default on
// every resnet18 workload, because it multiplied whole im2col matrices
// and had no Winograd path.)
//
// Measured on the development machine (2 cores of an AMD EPYC, AVX2, in
// a VM), float32 GFLOP/s for resnet18's im2col products
// (M×N×K) and small ones, best of two runs:
//
//	size            gonum  vek   default  purego  openblas
//	64×12544×147     18.8  43.9    179.4    12.6     167.0
//	64×3136×576      22.0  79.3    167.2    12.3     169.2
//	128×784×1152     21.6  76.6    168.0    12.4     166.1
//	256×196×2304     19.3  59.4    146.6    11.4     147.5
//	512×49×4608      21.6  23.1    121.9     9.8      97.2
//	64×256×128       17.3  56.5    103.4     6.6      67.2
//	10×8×6            3.3   3.5      3.6     3.6       3.5
//	1×1000×512       10.0  40.1     38.0     3.9      30.0
//
// gonum is gonum.org/v1/gonum/blas/gonum's Sgemm and vek is
// github.com/viterin/vek's vek32.MatMul; neither is used.
//
// # Convolutions
//
// Conv2D multiplies the weights by each image's im2col matrix without
// building it: the micro-kernel reads B straight from the input through a
// table of offsets (after one cheap copy that pads the input and, for
// strides, splits it into phases), so convolutions run at GEMM speed.
// The input gradient runs as a convolution too (stride 1), or as GEMMs by
// blocks each followed by its col2im while in cache. Measured (GFLOP/s,
// batch 1 / batch 10): resnet18's conv1 forward 153 / 166, input gradient
// 109 / 120; its 3×3 64→64 56×56 layer forward 138 / 160, input gradient
// 131 / 161 (OpenBLAS with whole im2col matrices: 75 / 74 and 90 / 87).
//
// # Threads
//
// Work is split over GOMAXPROCS goroutines when it is large enough
// (parallelMACs and friends), through internal/par, which shares it
// out dynamically: starting a goroutine on an idle core took about 175 µs
// on the development machine, so a caller never waits for a helper that
// has not started.
package kernels
