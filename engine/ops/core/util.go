package core

import (
	"fmt"

	"github.com/loupe-ml/loupe/engine/kernels"

	"github.com/loupe-ml/loupe/engine/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// Register adds this package's op factories to m, keyed by ONNX op type.
func Register(m map[string]op.Factory) {
	for k, f := range map[string]op.Factory{
		"Relu":               newRelu,
		"Sigmoid":            newSigmoid,
		"Tanh":               newTanh,
		"Add":                newBinary("Add"),
		"Sub":                newBinary("Sub"),
		"Mul":                newBinary("Mul"),
		"Div":                newBinary("Div"),
		"Gemm":               newGemm,
		"MatMul":             newMatMul,
		"Softmax":            newSoftmax,
		"LogSoftmax":         newLogSoftmax,
		"Conv":               newConv,
		"BatchNormalization": newBatchNorm,
		"MaxPool":            newMaxPool,
		"AveragePool":        newAveragePool,
		"GlobalAveragePool":  newGlobalAveragePool,
		"ReduceMean":         newReduce("ReduceMean"),
		"ReduceSum":          newReduce("ReduceSum"),
		"Identity":           newIdentity,
		"Dropout":            newIdentity,
		"Clip":               newClip,
		"Equal":              newCompare("Equal"),
		"Less":               newCompare("Less"),
		"LessOrEqual":        newCompare("LessOrEqual"),
		"Greater":            newCompare("Greater"),
		"GreaterOrEqual":     newCompare("GreaterOrEqual"),
		"And":                newCompare("And"),
		"Or":                 newCompare("Or"),
		"Xor":                newCompare("Xor"),
		"Not":                newCompare("Not"),
		"Where":              newWhere,
		"Pow":                newPow,
		"Max":                newExtremum(true),
		"Min":                newExtremum(false),
		"ReduceMax":          newExtremeReduce(true),
		"ReduceMin":          newExtremeReduce(false),
		"ArgMax":             newArgMax(true),
		"ArgMin":             newArgMax(false),
		"LayerNormalization": newLayerNorm,
	} {
		m[k] = f
	}
	for k, f := range unaries() {
		m[k] = f
	}
}

// parallel splits [0,n) over the CPUs when work (a rough count of
// floating-point operations) is large enough to pay for goroutines.
func parallel(n int, work int, fn func(lo, hi int)) {
	if work < 1<<16 {
		fn(0, n)
		return
	}
	kernels.ParallelFor(n, 1, fn)
}

func wantFloat(in []*tensor.Tensor, i int) error {
	if i >= len(in) || in[i] == nil {
		return fmt.Errorf("input %d is missing", i)
	}
	if in[i].DType != tensor.Float32 {
		return fmt.Errorf("input %d is %s, want float32", i, in[i].DType)
	}
	return nil
}

// axis normalises a possibly negative axis for a tensor of rank r.
func axis(n *graph.Node, a int64, r int) (int, error) {
	if a < 0 {
		a += int64(r)
	}
	if a < 0 || a >= int64(r) {
		return 0, fmt.Errorf("axis %d out of range for rank %d", a, r)
	}
	return int(a), nil
}

// ints converts an int64 slice to ints.
func ints(v []int64) []int {
	if v == nil {
		return nil
	}
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x)
	}
	return out
}
