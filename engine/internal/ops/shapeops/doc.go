// Package shapeops holds loupe's kernels for the shape and data-movement ops
// of ONNX (Shape, Size, Reshape, Flatten, Squeeze, Unsqueeze, Transpose,
// Concat, Split, Slice, Gather, GatherElements, GatherND, ScatterND,
// ScatterElements, Expand, Tile, Constant, ConstantOfShape, Range, Cast,
// CastLike, NonZero, DepthToSpace, SpaceToDepth, Trilu), which exported
// PyTorch models use both on float32 activations and on int64 shape
// tensors, and for the recurrent layers LSTM
// and GRU (forward, reverse and bidirectional, layouts 0 and 1,
// sequence_lens) with full backpropagation through time.
//
// Ops that move float32 data have vector-Jacobian products; those whose
// outputs are integer or boolean (Shape, Size, Range, NonZero, casts to
// integers) give no gradients.
//
// Register adds every factory of the package to an op registry. The
// reference values of the tests come from numpy scripts in testdata
// (gen_shape.py, gen_rnn.py), whose JSON output is committed.
package shapeops
