package metrics

import (
	"math/rand/v2"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/internal/testmodels"
	"github.com/loupe-ml/loupe/tensor"
)

// linearNet loads the oracle's linear model.
func linearNet(t *testing.T) *attr.Net { return loadNet(t, "linear_s0.onnx") }

// loadNet loads one of the shared test models.
func loadNet(t *testing.T, file string) *attr.Net {
	m, err := engine.Load(testmodels.Path(file))
	if err != nil {
		t.Fatal(err)
	}
	nt, err := attr.NewNet(m)
	if err != nil {
		t.Fatal(err)
	}
	return nt
}

// randn returns a float32 tensor of standard normal values.
func randn(seed uint64, shape ...int) *tensor.Tensor {
	r := rand.New(rand.NewPCG(seed, 1))
	x := tensor.New(shape...)
	for i := range x.F {
		x.F[i] = float32(r.NormFloat64())
	}
	return x
}
