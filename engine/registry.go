package engine

import (
	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/engine/internal/ops/mathops"
	"github.com/loupe-ml/loupe/engine/internal/ops/nnops"
	"github.com/loupe-ml/loupe/engine/internal/ops/shapeops"
)

// registry returns a new map of every op type the engine supports to the
// factory that builds its kernel.
func registry() map[string]op.Factory {
	m := map[string]op.Factory{}
	// nnops: convolution, pooling, normalization, Pad, Resize; mathops:
	// elementwise, reduction, softmax and matrix ops; shapeops: shape ops and
	// recurrent layers. The packages do not overlap.
	nnops.Register(m)
	mathops.Register(m)
	shapeops.Register(m)
	return m
}

// Supported reports whether the engine can run ops of the given type (in the
// default ONNX domain).
func Supported(opType string) bool {
	_, ok := registry()[opType]
	return ok
}
