package insights_test

import (
	"context"
	"fmt"
	"net/http/httptest"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/insights"
	"github.com/loupe-ml/loupe/internal/demo"
	"github.com/loupe-ml/loupe/internal/testmodels"
	"github.com/loupe-ml/loupe/tensor"
)

// ExampleNew serves Insights on three images for the built-in model; a
// real program would serve the handler with NewHTTPServer on a loopback
// address, and print its URL with ?token=.
func ExampleNew() {
	m, err := demo.Model()
	if err != nil {
		fmt.Println(err)
		return
	}
	nt, _ := attr.NewNet(m)
	var examples []insights.Example
	for class := range demo.Classes {
		img, _ := demo.Draw(class, 7)
		x, _ := img.Reshape(1, 3, demo.Size, demo.Size)
		examples = append(examples, insights.Example{ID: demo.Classes[class], Inputs: []*tensor.Tensor{x}, Label: class})
	}
	srv, err := insights.New(context.Background(), nt, demo.Classes, examples, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	token, err := insights.NewToken()
	if err != nil {
		fmt.Println(err)
		return
	}
	h, err := srv.Handler(insights.Config{Token: token})
	if err != nil {
		fmt.Println(err)
		return
	}
	web := httptest.NewServer(h)
	defer web.Close()
	sum := srv.Summary()
	fmt.Printf("%d of %d right\n", sum.Models[0].Right, sum.Labelled)
	png, err := srv.Attribution(context.Background(), 0, insights.Request{Method: "Saliency"})
	fmt.Println(len(png) > 0, err)
	// Output:
	// 3 of 3 right
	// true <nil>
}

// ExampleNewModels compares two models on a model of two inputs, an image
// and five named features: each example's attributions come as one part
// per input, in its modality, with its net contribution.
func ExampleNewModels() {
	var models []insights.Model
	for _, name := range []string{"first", "second"} {
		m, err := engine.Load(testmodels.Path("multimodal_s0.onnx"))
		if err != nil {
			fmt.Println(err)
			return
		}
		nt, _ := attr.NewNet(m)
		models = append(models, insights.Model{Name: name, Net: nt})
	}
	img, tab := tensor.New(1, 1, 8, 8), tensor.New(1, 5)
	for i := range img.F {
		img.F[i] = float32(i%5) / 5
	}
	for i := range tab.F {
		tab.F[i] = float32(i)
	}
	srv, err := insights.NewModels(context.Background(), models, []insights.Example{{ID: "one", Inputs: []*tensor.Tensor{img, tab}, Label: -1}},
		insights.Options{Inputs: []insights.Input{{Name: "scan"}, {Name: "record", Features: []string{"age", "height", "weight", "pulse", "dose"}}}})
	if err != nil {
		fmt.Println(err)
		return
	}
	e, err := srv.Explain(context.Background(), 0, insights.Request{Model: 1, Method: "Saliency"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(srv.Models(), e.Model)
	for _, p := range e.Parts {
		fmt.Println(p.Name, p.Modality, len(p.Features))
	}
	// Output:
	// [first second] second
	// scan image 0
	// record features 5
}

// ExampleNewModels_detector serves an object detector: each example
// carries the detector's boxes, and a request names the box it explains.
func ExampleNewModels_detector() {
	d, err := demo.Detector()
	if err != nil {
		fmt.Println(err)
		return
	}
	d.ScoreThreshold = 0.5
	img, _ := demo.Scene(9000)
	x, _ := img.Reshape(1, 3, demo.SceneSize, demo.SceneSize)
	srv, err := insights.NewModels(context.Background(), []insights.Model{{Name: "shapes", Detector: d, Layer: demo.DetectionLayer}},
		[]insights.Example{{ID: "scene", Inputs: []*tensor.Tensor{x}, Label: -1}}, insights.Options{Classes: d.Config.Classes})
	if err != nil {
		fmt.Println(err)
		return
	}
	rows, _ := srv.Examples(insights.AnyFilter)
	for _, b := range rows[0].Predictions[0].Boxes {
		fmt.Printf("box %d: %s, score above 0.9: %v\n", b.Index, b.Label, b.Score > 0.9)
	}
	e, err := srv.Explain(context.Background(), 0, insights.Request{Method: "HiResCAM", Box: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(e.Method, "of box", e.Box.Index, e.Box.Label, len(e.Parts), e.Parts[0].Modality)
	// Output:
	// box 0: square, score above 0.9: true
	// box 1: square, score above 0.9: true
	// box 2: square, score above 0.9: true
	// HiResCAM of box 1 square 1 image
}
