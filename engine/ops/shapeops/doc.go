// Package shapeops holds loupe's kernels for the shape and data-movement ops
// of ONNX (Shape, Reshape, Transpose, Concat, Split, Slice, Gather, Expand,
// Tile, Cast, Constant and friends), which exported PyTorch models use both
// on float32 activations and on int64 shape tensors, and for the recurrent
// layers LSTM and GRU with full backpropagation through time.
//
// Register adds every factory of the package to an op registry.
package shapeops
