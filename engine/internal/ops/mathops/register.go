package mathops

import (
	"github.com/loupe-ml/loupe/engine/internal/op"
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

// modern reports whether opset uses the opset-13 conventions (an unknown
// opset, 0, counts as modern).
func modern(opset int) bool { return opset <= 0 || opset >= 13 }

// gradOrZeros returns the output gradient, checked to have the given shape,
// or zeros of that shape when it is absent.
func gradOrZeros(gout []*tensor.Tensor, shape []int) (*tensor.Tensor, error) {
	g, err := op.ShapedGrad(gout, 0, shape)
	if g == nil && err == nil {
		g = tensor.New(shape...)
	}
	return g, err
}

// zerosLike returns a float32 zero tensor of t's shape.
func zerosLike(t *tensor.Tensor) *tensor.Tensor { return tensor.New(t.Shape...) }

// shapeOf returns a copy of a shape (never nil, so that scalars print as []).
func shapeOf(s []int) []int { return append([]int{}, s...) }
