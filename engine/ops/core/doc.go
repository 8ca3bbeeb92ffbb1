// Package core holds the op kernels that the oracle's models use (dense
// layers, convolutions, pooling, normalisation, activations and the shape
// ops of PyTorch exports), each with its forward function and its
// vector-Jacobian product.
package core
