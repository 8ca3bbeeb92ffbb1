package mathops

import (
	"fmt"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// Register adds this package's op factories to m, keyed by ONNX op type.
func Register(m map[string]op.Factory) {
	for name, f := range unaryFactories() {
		m[name] = f
	}
	m["Clip"] = newClip
	m["Identity"] = newIdentity
	m["Dropout"] = newDropout

	for _, name := range []string{"Add", "Sub", "Mul", "Div", "Pow"} {
		m[name] = newBinary(name)
	}
	for _, name := range []string{"Sum", "Mean", "Max", "Min"} {
		m[name] = newVariadic(name)
	}
	for _, name := range []string{"Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "And", "Or", "Xor"} {
		m[name] = newCompare(name)
	}
	m["Not"] = newNot
	m["Where"] = newWhere

	m["Softmax"] = newSoftmax(smSoftmax)
	m["LogSoftmax"] = newSoftmax(smLogSoftmax)
	m["Hardmax"] = newSoftmax(smHardmax)

	for _, name := range []string{"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd",
		"ReduceL2", "ReduceSumSquare", "ReduceLogSumExp"} {
		m[name] = newReduce(name)
	}
	m["ArgMax"] = newArg(true)
	m["ArgMin"] = newArg(false)

	m["MatMul"] = newMatMul
	m["Gemm"] = newGemm
	m["LayerNormalization"] = newLayerNorm
}

// arg returns in[i], or nil when the input is omitted.
func arg(in []*tensor.Tensor, i int) *tensor.Tensor {
	if i < len(in) {
		return in[i]
	}
	return nil
}

// anyArg returns input i, checking that it is present and well formed.
func anyArg(in []*tensor.Tensor, i int) (*tensor.Tensor, error) {
	t := arg(in, i)
	if t == nil {
		return nil, fmt.Errorf("input %d is missing", i)
	}
	if err := t.Check(); err != nil {
		return nil, fmt.Errorf("input %d: %v", i, err)
	}
	return t, nil
}

// floatArg returns input i, checking that it is present, well formed and
// float32.
func floatArg(in []*tensor.Tensor, i int) (*tensor.Tensor, error) {
	t, err := anyArg(in, i)
	if err != nil {
		return nil, err
	}
	if t.DType != tensor.Float32 {
		return nil, fmt.Errorf("input %d is %s, want float32", i, t.DType)
	}
	return t, nil
}

// gradAt returns gout[j], or nil when it is absent.
func gradAt(gout []*tensor.Tensor, j int) *tensor.Tensor {
	if j < len(gout) {
		return gout[j]
	}
	return nil
}

// needs reports need[i] (false when need is too short).
func needs(need []bool, i int) bool { return i < len(need) && need[i] }

// normAxis maps a possibly negative axis into [0, rank).
func normAxis(a int64, rank int) (int, error) {
	if a < -int64(rank) || a >= int64(rank) {
		return 0, fmt.Errorf("axis %d is out of range for rank %d", a, rank)
	}
	if a < 0 {
		a += int64(rank)
	}
	return int(a), nil
}

// outputCount is the number of outputs the node names: the index of its
// last non-empty output plus one.
func outputCount(n *graph.Node) int {
	c := 0
	for i, o := range n.Outputs {
		if o != "" {
			c = i + 1
		}
	}
	return c
}

// modern reports whether opset uses the opset-13 conventions (an unknown
// opset, 0, counts as modern).
func modern(opset int) bool { return opset <= 0 || opset >= 13 }

// zerosLike returns a float32 zero tensor of t's shape.
func zerosLike(t *tensor.Tensor) *tensor.Tensor { return tensor.New(t.Shape...) }

// shapeOf returns a copy of a shape (never nil, so that scalars print as []).
func shapeOf(s []int) []int { return append([]int{}, s...) }
