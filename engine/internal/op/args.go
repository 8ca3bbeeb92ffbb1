package op

import (
	"fmt"

	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// The helpers below read the arguments of Forward and Backward. Their
// errors name the input by its index ("input 2 is missing"); the engine
// adds the node.

// Arg returns in[i], or nil when the input is omitted (an empty name in the
// node, or fewer inputs than i+1).
func Arg(in []*tensor.Tensor, i int) *tensor.Tensor {
	if i < len(in) {
		return in[i]
	}
	return nil
}

// AnyArg returns input i, or an error unless it is present and well formed
// (tensor.Check).
func AnyArg(in []*tensor.Tensor, i int) (*tensor.Tensor, error) {
	t := Arg(in, i)
	if t == nil {
		return nil, fmt.Errorf("input %d is missing", i)
	}
	if err := t.Check(); err != nil {
		return nil, fmt.Errorf("input %d: %v", i, err)
	}
	return t, nil
}

// FloatArg returns input i, or an error unless it is present, well formed
// and float32.
func FloatArg(in []*tensor.Tensor, i int) (*tensor.Tensor, error) {
	t, err := AnyArg(in, i)
	if err != nil {
		return nil, err
	}
	if t.DType != tensor.Float32 {
		return nil, fmt.Errorf("input %d is %s, want float32", i, t.DType)
	}
	return t, nil
}

// AnyArgs sets *dst[i] to input i, for inputs 0 to len(dst)-1, checking
// each as AnyArg does; it returns the first error:
//
//	var a, b *tensor.Tensor
//	if err := op.AnyArgs(in, &a, &b); err != nil {
func AnyArgs(in []*tensor.Tensor, dst ...**tensor.Tensor) error {
	return args(AnyArg, in, dst)
}

// FloatArgs is AnyArgs for inputs that must be float32 (FloatArg).
func FloatArgs(in []*tensor.Tensor, dst ...**tensor.Tensor) error {
	return args(FloatArg, in, dst)
}

// args sets *dst[i] to get(in, i) for each i.
func args(get func([]*tensor.Tensor, int) (*tensor.Tensor, error), in []*tensor.Tensor, dst []**tensor.Tensor) error {
	for i, d := range dst {
		t, err := get(in, i)
		if err != nil {
			return err
		}
		*d = t
	}
	return nil
}

// GradAt returns gout[j], the gradient of output j, or nil when it is
// absent (the output does not reach the loss: treat it as zero).
func GradAt(gout []*tensor.Tensor, j int) *tensor.Tensor {
	return Arg(gout, j)
}

// ShapedGrad returns gout[j] as GradAt does (nil when absent), or an error
// unless it has the given shape, that of output j.
func ShapedGrad(gout []*tensor.Tensor, j int, shape []int) (*tensor.Tensor, error) {
	g := GradAt(gout, j)
	if g == nil || tensor.SameShape(g.Shape, shape) {
		return g, nil
	}
	if j == 0 {
		return nil, fmt.Errorf("output gradient has shape %v, want %v", g.Shape, shape)
	}
	return nil, fmt.Errorf("output %d gradient has shape %v, want %v", j, g.Shape, shape)
}

// Needs reports need[i], whether Backward must return the gradient of
// input i (false when need is too short).
func Needs(need []bool, i int) bool { return i < len(need) && need[i] }

// NormAxis maps an axis attribute or input in [-rank, rank) into [0, rank),
// negative axes counting from the end.
func NormAxis(axis int64, rank int) (int, error) {
	if axis < -int64(rank) || axis >= int64(rank) {
		return 0, fmt.Errorf("axis %d is out of range for rank %d", axis, rank)
	}
	if axis < 0 {
		axis += int64(rank)
	}
	return int(axis), nil
}

// OutputCount returns the number of outputs the node names: the index of
// its last non-empty output plus one (trailing optional outputs may be
// omitted or named "").
func OutputCount(n *graph.Node) int {
	c := 0
	for i, o := range n.Outputs {
		if o != "" {
			c = i + 1
		}
	}
	return c
}
