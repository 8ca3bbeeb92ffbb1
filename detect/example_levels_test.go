package detect_test

import (
	"context"
	"fmt"

	"github.com/loupe-ml/loupe/detect"
	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/tensor"
)

// A raw three-level head (one output per stride) declared level by level:
// Open joins the levels into one output and reads each level's grid from
// the model.
func ExampleOpen() {
	m, err := engine.Load("testdata/levels.onnx")
	if err != nil {
		fmt.Println(err)
		return
	}
	c := detect.Config{Layout: detect.Grid, Classes: []string{"a", "b"}, Objectness: true, Sigmoid: true,
		Levels: []detect.Level{
			{Output: "p3", Stride: 8, Anchors: [][2]float64{{10, 13}, {16, 30}}},
			{Output: "p4", Stride: 16, Anchors: [][2]float64{{30, 61}, {62, 45}}},
			{Output: "p5", Stride: 32, Anchors: [][2]float64{{59, 119}, {116, 90}}},
		}}
	d, err := detect.Open(m, c)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, l := range d.Config.Levels {
		fmt.Println(l.Output, "grid", l.Grid)
	}
	out, err := d.Net.Eval(context.Background(), []*tensor.Tensor{tensor.New(1, 3, 64, 96)})
	if err != nil {
		fmt.Println(err)
		return
	}
	p, err := d.Config.Predictions(out.Shape[1:])
	fmt.Println(d.Net.Output, out.Shape, p, "predictions", err)
	// Output:
	// p3 grid [8 12]
	// p4 grid [4 6]
	// p5 grid [2 3]
	// loupe_detect_levels [1 1764] 252 predictions <nil>
}
