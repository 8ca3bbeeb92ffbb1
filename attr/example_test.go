package attr_test

import (
	"context"
	"fmt"
	"log"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/internal/testmodels"
	"github.com/loupe-ml/loupe/tensor"
)

// Captum README's toy model: two linear layers around a ReLU.
var toyModel = testmodels.Path("toy.onnx")

func toyInputs() []*tensor.Tensor {
	x, _ := tensor.FromFloat32([]float32{
		0.29611194, 0.5165623, 0.25167072,
		0.6885568, 0.07397246, 0.86652195,
	}, 2, 3)
	return []*tensor.Tensor{x}
}

func printRows(t *tensor.Tensor) {
	row := t.Len() / t.Shape[0]
	for r := 0; r < t.Shape[0]; r++ {
		for _, v := range t.F[r*row : (r+1)*row] {
			fmt.Printf(" %7.4f", v)
		}
		fmt.Println()
	}
}

func ExampleIntegratedGradients() {
	m, err := engine.Load(toyModel)
	if err != nil {
		log.Fatal(err)
	}
	net, err := attr.NewNet(m)
	if err != nil {
		log.Fatal(err)
	}
	ig := &attr.IntegratedGradients{Net: net} // 50 Gauss-Legendre steps, as Captum
	r, err := ig.Attribute(context.Background(), toyInputs(), attr.Options{Target: attr.Class(0), Delta: true})
	if err != nil {
		log.Fatal(err)
	}
	printRows(r.Attributions[0])
	fmt.Printf("delta below 1e-4: %v\n", abs(r.Delta.F[0]) < 1e-4 && abs(r.Delta.F[1]) < 1e-4)
	// Output:
	//  -0.5922 -1.5497 -1.0067
	//   0.0000 -0.2219 -5.1991
	// delta below 1e-4: true
}

func ExampleDeepLift() {
	m, err := engine.Load(toyModel)
	if err != nil {
		log.Fatal(err)
	}
	net, err := attr.NewNet(m)
	if err != nil {
		log.Fatal(err)
	}
	dl := &attr.DeepLift{Net: net}
	r, err := dl.Attribute(context.Background(), toyInputs(), attr.Options{Target: attr.Class(0), Delta: true})
	if err != nil {
		log.Fatal(err)
	}
	printRows(r.Attributions[0])
	fmt.Printf("delta below 1e-5: %v\n", abs(r.Delta.F[0]) < 1e-5 && abs(r.Delta.F[1]) < 1e-5)
	// Output:
	//  -0.5922 -1.5497 -1.0067
	//   0.0000 -0.2219 -5.1991
	// delta below 1e-5: true
}

// Perturbation methods explain any Go function: here exact Shapley values
// of a small model with an interaction between its first two inputs.
func ExampleShapleyValues() {
	model := attr.Func(func(ctx context.Context, in []*tensor.Tensor) (*tensor.Tensor, error) {
		x := in[0]
		y := tensor.New(x.Shape[0])
		for r := range y.F {
			a, b, c := x.F[3*r], x.F[3*r+1], x.F[3*r+2]
			y.F[r] = a*b + c
		}
		return y, nil
	})
	x, _ := tensor.FromFloat32([]float32{2, 3, 1}, 1, 3)
	r, err := (&attr.ShapleyValues{Model: model}).Attribute(context.Background(), []*tensor.Tensor{x}, attr.Options{})
	if err != nil {
		log.Fatal(err)
	}
	// The interaction a*b = 6 is shared equally; c gets its own 1.
	fmt.Println(r.Attributions[0].F)
	// Output: [3 3 1]
}

func abs(v float32) float32 {
	if v < 0 {
		return -v
	}
	return v
}
