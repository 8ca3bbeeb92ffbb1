package attr_test

import (
	"context"
	"fmt"
	"log"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/tensor"
)

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
