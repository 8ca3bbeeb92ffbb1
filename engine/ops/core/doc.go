// Package core holds the engine's numeric op kernels (dense layers,
// convolutions, pooling, normalisation, activations, comparisons and
// reductions), each with its forward function and its vector-Jacobian
// product. Shape ops and recurrent layers are in package shapeops.
package core
