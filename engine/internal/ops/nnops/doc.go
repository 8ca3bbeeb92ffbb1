// Package nnops holds loupe's neural-network layer ops over NCHW tensors:
// convolution (Conv, ConvTranspose), normalization (BatchNormalization in
// inference mode, InstanceNormalization, LRN), pooling (MaxPool, AveragePool,
// GlobalAveragePool, GlobalMaxPool), Pad, and resampling (Resize, Upsample).
// Every kernel has a forward function and a vector-Jacobian product that
// follows PyTorch's autograd conventions.
//
// Register adds the factories to an op registry. Convolutions run on
// engine/internal/kernels (Conv2D and its two gradients); the other loops
// run over (image, channel) planes on all cores through
// internal/par.
package nnops
