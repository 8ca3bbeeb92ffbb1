package nnops

import (
	"github.com/loupe-ml/loupe/engine/internal/op"
)

// Register adds this package's op factories to m, keyed by ONNX op type.
func Register(m map[string]op.Factory) {
	m["Conv"] = newConv
	m["ConvTranspose"] = newConvTranspose
	m["BatchNormalization"] = newBatchNorm
	m["InstanceNormalization"] = newInstanceNorm
	m["LRN"] = newLRN
	m["MaxPool"] = newMaxPool
	m["AveragePool"] = newAveragePool
	m["GlobalAveragePool"] = newGlobalAveragePool
	m["GlobalMaxPool"] = newGlobalMaxPool
	m["Pad"] = newPad
	m["Resize"] = newResize
	m["Upsample"] = newUpsample
}

// toInts converts an int64 slice to ints (nil stays nil).
func toInts(v []int64) []int {
	if v == nil {
		return nil
	}
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x)
	}
	return out
}

// floorDiv returns floor(a/b) for b > 0.
func floorDiv(a, b int) int {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// ceilDiv returns ceil(a/b) for b > 0.
func ceilDiv(a, b int) int { return -floorDiv(-a, b) }
