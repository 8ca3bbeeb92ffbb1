package op

import "github.com/loupe-ml/loupe/tensor"

// Local is implemented by kernels whose output at a position depends only on
// their inputs near that position (elementwise ops, convolution, pooling,
// per-channel normalization). The engine's incremental inference uses it to
// recompute only the part of an output that a change to a part of the input
// reaches (Nakandala et al., SIGMOD 2019). Every op with a Local rule treats
// the rows of the batch (axis 0) independently.
type Local interface {
	// Local returns the rule for inputs like in (only their shapes and
	// dtypes matter), or false when the op has none for them: the engine
	// then computes the whole output, which is exact, just not faster.
	Local(in []*tensor.Tensor) (LocalRule, bool)
}

// AxisKind tells how an output axis of a local op depends on the same axis
// of its data input.
type AxisKind uint8

const (
	// Same: output position i depends on input position i only.
	Same AxisKind = iota
	// Whole: every output position depends on the whole input axis (the
	// channels of a convolution).
	Whole
	// Window: output position o depends on the input positions
	// o·S - Pad + k·D for k < K (convolution, pooling).
	Window
)

// AxisRule is how one axis of a local op's output depends on its data input.
type AxisRule struct {
	Kind      AxisKind
	K, S, D   int // window size, stride and dilation (Window)
	Pad       int // padding before the first input position (Window)
	InN, OutN int // the axis' size in the input and the output
}

// PaddedLen returns the length of the axis once padded as Kernel expects:
// Pad positions before the input, and as many after it as the last window
// reaches (which may be fewer than the op's own end padding).
func (a AxisRule) PaddedLen() int {
	if a.Kind != Window {
		return a.InN
	}
	return (a.OutN-1)*a.S + (a.K-1)*a.D + 1
}

// LocalRule is how a local op's first output depends on its inputs.
type LocalRule struct {
	// Elementwise ops map every input, broadcast to the output's shape,
	// position by position; Axes, Kernel and PadValue are unused. Their own
	// kernel computes any box of the output from the same box of the
	// inputs.
	Elementwise bool
	// JoinAxis, when above 0, makes an elementwise rule one for Concat:
	// along that axis the inputs are joined, not broadcast, and the output
	// is computed whole.
	JoinAxis int
	// Otherwise input 0 is the data (of the output's rank) and the other
	// inputs are parameters used whole (weights, biases, statistics).
	// Axes gives the rule of each axis but the batch (Axes[0] is for axis
	// 1).
	Axes []AxisRule
	// Kernel computes the output over a box from the crop of input 0 that
	// the box reads, taken from input 0 padded along its Window axes (see
	// AxisRule.PaddedLen) with PadValue; nil means the op's own kernel
	// (which then must not pad).
	Kernel   Kernel
	PadValue float32
}
