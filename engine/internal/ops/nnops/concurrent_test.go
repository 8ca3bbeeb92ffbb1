package nnops

import (
	"sync"
	"testing"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/engine/internal/op/optest"
	"github.com/loupe-ml/loupe/tensor"
)

// TestConcurrentCalls runs kernels from several goroutines at once (under
// -race this checks they keep no mutable state) and checks the results
// agree.
func TestConcurrentCalls(t *testing.T) {
	cases := []struct {
		k  op.Kernel
		in []*tensor.Tensor
	}{
		{build(t, mk("Conv", 3, 1, aInts("pads", 1, 1, 1, 1)), 13), []*tensor.Tensor{optest.Rand(1, 2, 3, 16, 16), optest.Rand(2, 8, 3, 3, 3), optest.Rand(3, 8)}},
		{build(t, mk("MaxPool", 1, 2, aInts("kernel_shape", 3, 3), aInts("strides", 2, 2)), 13), []*tensor.Tensor{optest.Rand(4, 2, 8, 32, 32)}},
		{build(t, mk("AveragePool", 1, 1, aInts("kernel_shape", 2, 2), aInts("strides", 2, 2)), 13), []*tensor.Tensor{optest.Rand(5, 2, 8, 32, 32)}},
		{build(t, mk("Resize", 4, 1, aStr("mode", "linear")), 13), []*tensor.Tensor{optest.Rand(6, 1, 4, 16, 16), nil, nil, it(1, 4, 40, 24)}},
	}
	for _, c := range cases {
		want := forward(t, c.k, c.in...)
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, err := c.k.Forward(c.in)
				if err != nil {
					t.Error(err)
					return
				}
				if d := tensor.MaxAbsDiff(out[0].F, want[0].F); d != 0 {
					t.Errorf("%T: concurrent results differ by %g", c.k, d)
				}
				gout := []*tensor.Tensor{optest.Rand(7, out[0].Shape...)}
				need := make([]bool, len(c.in))
				need[0] = true
				if _, err := c.k.(op.Differentiable).Backward(c.in, out, gout, need); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
}
