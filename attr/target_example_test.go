package attr_test

import (
	"context"
	"fmt"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/tensor"
)

// A segmentation target explains the sum of one class's logits over a
// region. Here the "model" returns its input as the logits [N, 2, 2, 2],
// so ablating each element removes exactly its contribution to the
// region's sum.
func ExampleMask() {
	model := attr.Func(func(_ context.Context, in []*tensor.Tensor) (*tensor.Tensor, error) { return in[0], nil })
	x, _ := tensor.FromFloat32([]float32{1, 2, 3, 4, 5, 6, 7, 8}, 1, 2, 2, 2)
	region, _ := tensor.FromFloat32([]float32{1, 0, 0, 1}, 2, 2) // the diagonal
	r, err := (&attr.FeatureAblation{Model: model}).Attribute(context.Background(), []*tensor.Tensor{x}, attr.Options{Target: attr.Mask(1, region)})
	if err != nil {
		panic(err)
	}
	fmt.Println(r.Attributions[0].F)
	// Output: [0 0 0 0 5 0 0 8]
}

// A similarity target explains how close an embedding is to a reference.
func ExampleSimilarity() {
	model := attr.Func(func(_ context.Context, in []*tensor.Tensor) (*tensor.Tensor, error) { return in[0], nil })
	x, _ := tensor.FromFloat32([]float32{3, 4}, 1, 2)
	ref, _ := tensor.FromFloat32([]float32{1, 0}, 2)
	v, err := model.Eval(context.Background(), []*tensor.Tensor{x})
	if err != nil {
		panic(err)
	}
	cos, err := attr.Select(v, attr.Similarity(ref, false), 1)
	if err != nil {
		panic(err)
	}
	fmt.Printf("cosine %.2f\n", cos[0])
	// Output: cosine 0.60
}
