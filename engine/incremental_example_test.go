package engine_test

import (
	"context"
	"fmt"
	"log"

	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/internal/testmodels"
	"github.com/loupe-ml/loupe/tensor"
)

// Evaluate a CNN on two copies of an image with a 4x4 window zeroed in
// each, recomputing only what the windows reach, and compare with full
// passes.
func ExampleModel_Incremental() {
	m, err := engine.Load(testmodels.Path("cnn_s0.onnx"))
	if err != nil {
		log.Fatal(err)
	}
	name := m.Inputs()[0].Name
	x := tensor.New(1, 3, 32, 32)
	for i := range x.F {
		x.F[i] = float32(i%7) / 7
	}
	ctx := context.Background()
	inc, err := m.Incremental(ctx, map[string]*tensor.Tensor{name: x}, 1, nil)
	if err != nil {
		log.Fatal(err)
	}
	zeros := tensor.New(1, 3, 4, 4) // the new values of the box
	patches := []engine.Patch{
		{Input: name, Start: []int{0, 0, 0}, Values: zeros},
		{Input: name, Start: []int{0, 10, 20}, Values: zeros},
	}
	y, err := inc.Eval(ctx, patches)
	if err != nil {
		log.Fatal(err)
	}
	// The same copies, whole.
	full := tensor.New(2, 3, 32, 32)
	for k, p := range patches {
		copy(full.F[k*x.Len():], x.F)
		for c := 0; c < 3; c++ {
			for i := 0; i < 4; i++ {
				for j := 0; j < 4; j++ {
					full.F[k*x.Len()+c*1024+(p.Start[1]+i)*32+p.Start[2]+j] = 0
				}
			}
		}
	}
	pass, err := m.Forward(ctx, map[string]*tensor.Tensor{name: full}, nil)
	if err != nil {
		log.Fatal(err)
	}
	want, _ := pass.Output(0)
	fmt.Println(y.Shape, tensor.MaxAbsDiff(y.F, want.F) < 1e-5)
	// Output:
	// [2 10] true
}
