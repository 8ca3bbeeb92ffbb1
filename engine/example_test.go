package engine_test

import (
	"context"
	"fmt"
	"log"

	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/internal/testmodels"
	"github.com/loupe-ml/loupe/tensor"
)

// Run a model, read an intermediate tensor, and take the gradient of one
// output with respect to the input.
func Example() {
	m, err := engine.Load(testmodels.Path("toy.onnx"))
	if err != nil {
		log.Fatal(err)
	}
	x, _ := tensor.FromFloat32([]float32{1, 2, 3}, 1, 3)
	hidden, _ := m.Resolve("lin1", false) // the module's output tensor
	p, err := m.Forward(context.Background(), map[string]*tensor.Tensor{"input": x},
		&engine.Options{Record: true, Taps: []string{hidden}})
	if err != nil {
		log.Fatal(err)
	}
	y, _ := p.Output(0)
	h, _ := p.Value(hidden)
	seed, _ := tensor.FromFloat32([]float32{1, 0}, 1, 2) // d output[0]
	g, err := p.Backward(context.Background(), map[string]*tensor.Tensor{"output": seed}, []string{"input"}, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(hidden, h.F)
	fmt.Println("output", y.F)
	fmt.Println("gradient", g["input"].F)
	// Output:
	// /lin1/Gemm_output_0 [-16 2 20]
	// output [-23 43]
	// gradient [0 -3 -6]
}

// Replace a tensor by a value of one's own: the network runs on from it.
func ExampleOptions_inject() {
	m, err := engine.Load(testmodels.Path("toy.onnx"))
	if err != nil {
		log.Fatal(err)
	}
	h, _ := tensor.FromFloat32([]float32{0, 1, 0}, 1, 3)
	p, err := m.Forward(context.Background(), nil, &engine.Options{Inject: map[string]*tensor.Tensor{"/relu/Relu_output_0": h}})
	if err != nil {
		log.Fatal(err)
	}
	y, _ := p.Output(0)
	fmt.Println(y.F)
	// Output: [-1 2]
}
