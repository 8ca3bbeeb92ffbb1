package concept_test

import (
	"context"
	"fmt"
	"log"
	"math"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/concept"
	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/internal/testmodels"
	"github.com/loupe-ml/loupe/tensor"
)

func rows(n int, pattern []float32, seed float64) *tensor.Tensor {
	x := tensor.New(n, len(pattern))
	for i := range x.F {
		x.F[i] = pattern[i%len(pattern)] + 0.3*float32(math.Sin(float64(i)*seed))
	}
	return x
}

func ExampleTCAV() {
	m, err := engine.Load(testmodels.Path("mlp_s0.onnx"))
	if err != nil {
		log.Fatal(err)
	}
	net, err := attr.NewNet(m)
	if err != nil {
		log.Fatal(err)
	}
	striped := concept.Concept{ID: 0, Name: "alternating", Inputs: rows(20, []float32{1, -1, 1, -1, 1, -1}, 1.1)}
	random := concept.Concept{ID: 1, Name: "random_0", Inputs: rows(20, []float32{0, 0, 0, 0, 0, 0}, 2.3)}
	tcav := &concept.TCAV{Net: net, Layers: []string{"fc1"}}
	inputs := []*tensor.Tensor{rows(8, []float32{0.2, 0.1, 0, -0.1, -0.2, 0.3}, 0.9)}
	scores, err := tcav.Interpret(context.Background(), inputs, [][]concept.Concept{{striped, random}}, attr.Class(1), attr.Options{})
	if err != nil {
		log.Fatal(err)
	}
	s := scores["0-1"]["fc1"]
	fmt.Println("concepts scored:", len(s.SignCount))
	fmt.Println("scores of the pair add up to 1:", s.SignCount[0]+s.SignCount[1] == 1)
	// Output:
	// concepts scored: 2
	// scores of the pair add up to 1: true
}
