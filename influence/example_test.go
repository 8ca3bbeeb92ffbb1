package influence_test

import (
	"context"
	"fmt"
	"log"
	"math"

	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/influence"
	"github.com/loupe-ml/loupe/internal/testmodels"
	"github.com/loupe-ml/loupe/tensor"
)

func ExampleTracInCP() {
	// Checkpoints would be ONNX files saved during training, each with its
	// learning rate (influence.LoadCheckpoints); here the same model twice.
	m, err := engine.Load(testmodels.Path("mlp_s0.onnx"))
	if err != nil {
		log.Fatal(err)
	}
	cks := []influence.Checkpoint{{Model: m, LearningRate: 0.1}, {Model: m, LearningRate: 0.05}}
	x := tensor.New(8, 6)
	for i := range x.F {
		x.F[i] = float32(math.Sin(float64(i)))
	}
	train := influence.Dataset{Inputs: []*tensor.Tensor{x}, Labels: []int{0, 1, 2, 3, 0, 1, 2, 3}}
	tracin := &influence.TracInCP{Checkpoints: cks, TrainDataset: train}
	// The first two training examples as test examples.
	test := influence.Dataset{Inputs: []*tensor.Tensor{{DType: tensor.Float32, Shape: []int{2, 6}, F: x.F[:12]}}, Labels: []int{0, 1}}
	scores, err := tracin.Influence(context.Background(), test)
	if err != nil {
		log.Fatal(err)
	}
	top, err := influence.KMostInfluential(scores, 1, true)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("scores:", scores.Shape)
	fmt.Println("each test example's top proponent is itself:", top.Indices[0][0] == 0 && top.Indices[1][0] == 1)
	// Output:
	// scores: [2 8]
	// each test example's top proponent is itself: true
}
