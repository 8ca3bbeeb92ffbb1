package engine

import (
	"testing"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/engine/internal/ops/mathops"
	"github.com/loupe-ml/loupe/engine/internal/ops/nnops"
	"github.com/loupe-ml/loupe/engine/internal/ops/shapeops"
)

// Each op type has one kernel package: none silently shadows another.
func TestRegistryNoOverlap(t *testing.T) {
	owner := map[string]string{}
	for name, reg := range map[string]func(map[string]op.Factory){"nnops": nnops.Register, "mathops": mathops.Register, "shapeops": shapeops.Register} {
		m := map[string]op.Factory{}
		reg(m)
		for k := range m {
			if prev, ok := owner[k]; ok {
				t.Errorf("%s is registered by both %s and %s", k, prev, name)
			}
			owner[k] = name
		}
	}
	for _, want := range []string{"Conv", "Gemm", "Relu", "LSTM", "Gather", "Resize", "LayerNormalization", "Softmax", "MaxPool"} {
		if !Supported(want) {
			t.Errorf("%s is not supported", want)
		}
	}
}
