package shapeops

import (
	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/tensor"
)

// Local rules (op.Local) of this package's ops, for incremental inference.

// Local: Concat along an axis after the batch joins its inputs position by
// position along the other axes (the channels of Inception, DenseNet and
// SqueezeNet blocks); the joined axis is taken whole.
func (k concat) Local(in []*tensor.Tensor) (op.LocalRule, bool) {
	if len(in) == 0 || in[0] == nil {
		return op.LocalRule{}, false
	}
	r := in[0].Rank()
	a := int(k.axis)
	if a < 0 {
		a += r
	}
	if a < 1 || a >= r {
		return op.LocalRule{}, false
	}
	for _, x := range in {
		if x == nil || x.DType != tensor.Float32 || x.Rank() != r {
			return op.LocalRule{}, false
		}
	}
	return op.LocalRule{Elementwise: true, JoinAxis: a}, true
}
