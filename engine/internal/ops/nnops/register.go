package nnops

import (
	"fmt"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/tensor"
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

// input returns in[i] when it is present, nil otherwise.
func input(in []*tensor.Tensor, i int) *tensor.Tensor {
	if i < len(in) {
		return in[i]
	}
	return nil
}

// wantFloat checks that input i is present and float32.
func wantFloat(in []*tensor.Tensor, i int) (*tensor.Tensor, error) {
	t := input(in, i)
	if t == nil {
		return nil, fmt.Errorf("input %d is missing", i)
	}
	if t.DType != tensor.Float32 {
		return nil, fmt.Errorf("input %d is %s, want float32", i, t.DType)
	}
	if err := t.Check(); err != nil {
		return nil, fmt.Errorf("input %d: %v", i, err)
	}
	return t, nil
}

// gradOut returns gout[j], or nil when it is absent.
func gradOut(gout []*tensor.Tensor, j int) *tensor.Tensor {
	if j < len(gout) {
		return gout[j]
	}
	return nil
}

// needs reports need[i], false when need is too short.
func needs(need []bool, i int) bool { return i < len(need) && need[i] }

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
