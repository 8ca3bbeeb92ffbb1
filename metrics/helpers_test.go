package metrics

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/internal/testmodels"
	"github.com/loupe-ml/loupe/tensor"
)

// onLinear returns what the tests on the oracle's linear model (6 features
// in) start from: a context, the model, and a batch of n random examples
// drawn with seed.
func onLinear(t *testing.T, seed uint64, n int) (context.Context, *attr.Net, []*tensor.Tensor) {
	return context.Background(), loadNet(t, "linear_s0.onnx"), []*tensor.Tensor{randn(seed, n, 6)}
}

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
