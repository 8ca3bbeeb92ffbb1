package shapeops

import "github.com/loupe-ml/loupe/engine/internal/op"

// Register adds the factories of this package's ops to m, keyed by ONNX op
// type: Shape, Size, Reshape, Flatten, Squeeze, Unsqueeze, Transpose,
// Concat, Split, Slice, Gather, GatherElements, GatherND, ScatterND,
// ScatterElements (and its old name Scatter), Expand, Tile, Constant,
// ConstantOfShape, Range, Cast, CastLike, NonZero, DepthToSpace,
// SpaceToDepth, Trilu, LSTM and GRU.
func Register(m map[string]op.Factory) {
	m["Shape"] = newShape
	m["Size"] = newSize
	m["Reshape"] = newReshape
	m["Flatten"] = newFlatten
	m["Squeeze"] = newSqueeze
	m["Unsqueeze"] = newUnsqueeze
	m["Transpose"] = newTranspose
	m["Concat"] = newConcat
	m["Split"] = newSplit
	m["Slice"] = newSlice
	m["Gather"] = newGather
	m["GatherElements"] = newGatherElements
	m["GatherND"] = newGatherND
	m["ScatterND"] = newScatterND
	m["ScatterElements"] = newScatterElements
	m["Scatter"] = newScatterElements
	m["Expand"] = newExpand
	m["Tile"] = newTile
	m["Constant"] = newConstant
	m["ConstantOfShape"] = newConstantOfShape
	m["Range"] = newRange
	m["Cast"] = newCast
	m["CastLike"] = newCastLike
	m["NonZero"] = newNonZero
	m["DepthToSpace"] = newDepthToSpace
	m["SpaceToDepth"] = newSpaceToDepth
	m["Trilu"] = newTrilu
	m["LSTM"] = newLSTM
	m["GRU"] = newGRU
}
