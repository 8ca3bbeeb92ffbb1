package mathops

import (
	"fmt"
	"sort"
	"sync"
	"testing"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/engine/internal/op/optest"
	"github.com/loupe-ml/loupe/tensor"
)

// TestNoPanics feeds every op odd inputs: it may fail, but never panic.
func TestNoPanics(t *testing.T) {
	bad := &tensor.Tensor{DType: tensor.Float32, Shape: []int{4}, F: []float32{1}}
	odd := [][]*tensor.Tensor{
		nil,
		{nil},
		{nil, nil, nil},
		{bad},
		{bad, bad},
		{tensor.Scalar(1)},
		{tensor.Scalar(1), tensor.Scalar(2), tensor.Scalar(3)},
		{ft(sh(2, 3)), ft(sh(3, 2)), ft(sh(7))},
		{ft(sh(0, 3)), ft(sh(3, 0)), ft(sh(0))},
		{it(sh(2), 1, 2), it(sh(2), 0, 0), it(sh(1), 5)},
		{bt(sh(2), true, false), bt(sh(2), true, false), bt(sh(2), true, false)},
		{ft(sh(2, 3)), it(sh(1), 9)},
		{ft(sh(2, 3)), it(sh(2, 2), 0, 1, 1, 0)},
		{bt(sh(2), true, false), ft(sh(2)), it(sh(2), 1, 2)},
		{&tensor.Tensor{DType: 9, Shape: []int{1}}},
	}
	names := make([]string, 0, len(registry))
	for name := range registry {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, opset := range []int{7, 11, 13, 18} {
			k, err := registry[name](mkNode(name, 3), opset)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for i, in := range odd {
				func() {
					defer func() {
						if r := recover(); r != nil {
							t.Errorf("%s opset %d, inputs %d: panic %v", name, opset, i, r)
						}
					}()
					out, err := k.Forward(in)
					if err != nil {
						return
					}
					if d, ok := k.(op.Differentiable); ok {
						need := make([]bool, len(in))
						for j := range need {
							need[j] = true
						}
						gout := make([]*tensor.Tensor, len(out))
						for j, o := range out {
							if o != nil && o.DType == tensor.Float32 {
								gout[j] = tensor.New(o.Shape...)
							}
						}
						d.Backward(in, out, gout, need)
						d.Backward(in, out, make([]*tensor.Tensor, len(out)), need)
					}
				}()
			}
		}
	}
}

// TestConcurrent runs kernels from several goroutines at once (for -race).
func TestConcurrent(t *testing.T) {
	x := optest.Rand(1, 4, 64, 64)
	w := optest.Rand(2, 64, 32)
	kernels := []struct {
		name string
		in   []*tensor.Tensor
	}{
		{"Relu", []*tensor.Tensor{x}},
		{"Add", []*tensor.Tensor{x, x}},
		{"Softmax", []*tensor.Tensor{x}},
		{"ReduceMean", []*tensor.Tensor{x}},
		{"MatMul", []*tensor.Tensor{x, w}},
		{"LayerNormalization", []*tensor.Tensor{x}},
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for _, c := range kernels {
		k := kern(t, c.name, 17)
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, err := k.Forward(c.in)
				if err != nil {
					errs <- err
					return
				}
				gout := []*tensor.Tensor{tensor.New(out[0].Shape...)}
				need := make([]bool, len(c.in))
				need[0] = true
				if _, err := k.(op.Differentiable).Backward(c.in, out, gout, need); err != nil {
					errs <- fmt.Errorf("%s: %v", c.name, err)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestRegistered(t *testing.T) {
	want := []string{"Relu", "Sigmoid", "Tanh", "Exp", "Log", "Neg", "Abs", "Sqrt", "Reciprocal", "Erf",
		"Softplus", "LeakyRelu", "Elu", "Selu", "HardSigmoid", "Gelu", "Clip", "Identity", "Dropout", "Sign",
		"Floor", "Ceil", "Round", "Sin", "Cos", "Pow", "Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "Mean",
		"Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "And", "Or", "Not", "Xor", "Where",
		"Softmax", "LogSoftmax", "Hardmax", "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd",
		"ReduceL2", "ReduceSumSquare", "ReduceLogSumExp", "ArgMax", "ArgMin", "MatMul", "Gemm", "LayerNormalization"}
	for _, name := range want {
		if registry[name] == nil {
			t.Errorf("%s is not registered", name)
		}
	}
}
