package engine

import (
	"github.com/loupe-ml/loupe/engine/op"
	"github.com/loupe-ml/loupe/engine/ops/core"
	"github.com/loupe-ml/loupe/engine/ops/mathops"
	"github.com/loupe-ml/loupe/engine/ops/nnops"
	"github.com/loupe-ml/loupe/engine/ops/shapeops"
)

// Registry returns a new map of every op type the engine supports to the
// factory that builds its kernel.
func Registry() map[string]op.Factory {
	m := map[string]op.Factory{}
	// nnops brings Pad, Resize, Upsample, ConvTranspose, InstanceNormalization,
	// GlobalMaxPool and LRN; core the convolution, pooling and batch
	// normalisation kernels that the Captum parity cases were first checked
	// with; mathops the elementwise, reduction, softmax and matrix ops
	// (vectorised); shapeops the shape ops and the recurrent layers (all
	// directions, sequence_lens). Later registrations win where packages
	// overlap.
	nnops.Register(m)
	core.Register(m)
	mathops.Register(m)
	shapeops.Register(m)
	return m
}

// Supported reports whether the engine can run ops of the given type (in the
// default ONNX domain).
func Supported(opType string) bool {
	_, ok := Registry()[opType]
	return ok
}
