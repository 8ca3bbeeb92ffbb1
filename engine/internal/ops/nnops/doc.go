// Package nnops holds loupe's neural-network layer ops over NCHW tensors:
// convolution (Conv, ConvTranspose), normalization (BatchNormalization in
// inference mode, InstanceNormalization, LRN), pooling (MaxPool, AveragePool,
// GlobalAveragePool, GlobalMaxPool), Pad, and resampling (Resize, Upsample).
// Every kernel has a forward function and a vector-Jacobian product that
// follows PyTorch's autograd conventions.
package nnops
