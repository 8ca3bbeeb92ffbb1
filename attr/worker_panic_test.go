package attr

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/loupe-ml/loupe/tensor"
)

// TestWorkerPanicIsAnError: a model that panics inside a perturbation
// worker goroutine gives an error, with one worker or several (a panic on
// a worker goroutine used to end the process).
func TestWorkerPanicIsAnError(t *testing.T) {
	var calls atomic.Int64
	f := Func(func(_ context.Context, in []*tensor.Tensor) (*tensor.Tensor, error) {
		if calls.Add(1) > 2 {
			panic("model bug")
		}
		n := in[0].Shape[0]
		out := tensor.New(n, 2)
		for i := range out.F {
			out.F[i] = float32(i)
		}
		return out, nil
	})
	x := tensor.New(1, 1, 8, 8)
	for _, workers := range []int{1, 2} {
		calls.Store(0)
		m := &Occlusion{Model: f, SlidingWindowShapes: [][]int{{1, 2, 2}}, PerturbationsPerEval: 1}
		_, err := m.Attribute(context.Background(), []*tensor.Tensor{x}, Options{Target: Class(0), Workers: workers})
		if err == nil || !strings.Contains(err.Error(), "model bug") {
			t.Errorf("workers=%d: error %v, want the model's panic as an error", workers, err)
		}
	}
}
