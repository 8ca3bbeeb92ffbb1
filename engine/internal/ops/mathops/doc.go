// Package mathops holds the engine's arithmetic op kernels: elementwise
// unary functions and activations, numpy-broadcasting binary arithmetic,
// comparisons and logic, Softmax and its relatives, reductions, MatMul and
// Gemm, and LayerNormalization. Each differentiable kernel has a
// vector-Jacobian product that follows PyTorch's autograd conventions.
//
// Register adds the factories to an op registry. Kernels are immutable once
// built and safe for concurrent use; large elementwise and reduction loops
// run on all cores through internal/par, matrix products call
// engine/internal/kernels.Sgemm, and the hottest elementwise loops (add,
// subtract, multiply, ReLU, and exp with Sigmoid, Tanh and Softmax built on
// it) use the AVX2 kernels of github.com/viterin/vek (see vec.go for the
// accuracy trade-offs: exp within 2 ulp, Sigmoid and Tanh within 2 ulp).
package mathops
