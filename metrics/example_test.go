package metrics_test

import (
	"context"
	"fmt"
	"log"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/metrics"
	"github.com/loupe-ml/loupe/tensor"
)

// Infidelity of input x gradient on a linear function is zero for any
// perturbation: its attributions explain every change of the output.
func ExampleInfidelity() {
	w := []float32{1, -2, 0.5}
	model := attr.Func(func(ctx context.Context, in []*tensor.Tensor) (*tensor.Tensor, error) {
		x := in[0]
		y := tensor.New(x.Shape[0])
		for r := range y.F {
			for j, wj := range w {
				y.F[r] += wj * x.F[3*r+j]
			}
		}
		return y, nil
	})
	x, _ := tensor.FromFloat32([]float32{1, 1, 1, 2, 0, -1}, 2, 3)
	grad, _ := tensor.FromFloat32(append(append([]float32(nil), w...), w...), 2, 3) // the gradient
	v, err := metrics.Infidelity(context.Background(), model, metrics.GaussianNoise(0.1), []*tensor.Tensor{x}, []*tensor.Tensor{grad}, attr.Options{}, false, metrics.Options{Seed: 1})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%.6f %.6f\n", v.F[0], v.F[1])
	// Output: 0.000000 0.000000
}
