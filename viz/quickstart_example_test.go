package viz_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/internal/demo"
	"github.com/loupe-ml/loupe/tensor"
	"github.com/loupe-ml/loupe/viz"
)

// Example_quickStart is the README's quick start, on the built-in demo
// model: explain what the model predicts for a picture with Integrated
// Gradients, and save the figure. With a model of your own, load it with
// engine.Load("resnet18.onnx") and the picture with
// preprocess.Load("cat.jpg", preprocess.ImageNet()).
func Example_quickStart() {
	ctx := context.Background()
	m, err := demo.Model() // engine.Load("model.onnx") for yours
	if err != nil {
		log.Fatal(err)
	}
	net, err := attr.NewNet(m)
	if err != nil {
		log.Fatal(err)
	}
	img, _ := demo.Draw(2, 7) // a triangle, [3, H, W] in [0, 1]
	x, _ := img.Reshape(append([]int{1}, img.Shape...)...)
	inputs := []*tensor.Tensor{x} // a batch of one

	// The predicted class, the usual target.
	y, err := net.Eval(ctx, inputs)
	if err != nil {
		log.Fatal(err)
	}
	classes, probs, err := attr.TopClasses(y)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("predicted %s, probability above 0.9: %v\n", demo.Classes[classes[0]], probs[0] > 0.9)

	ig := &attr.IntegratedGradients{Net: net} // 50 steps, as Captum
	r, err := ig.Attribute(ctx, inputs, attr.Options{Target: attr.Classes(classes...)})
	if err != nil {
		log.Fatal(err)
	}
	a, err := r.Attributions[0].Example(0) // the first (only) example, [3, H, W]
	if err != nil {
		log.Fatal(err)
	}
	fig, err := viz.ImageAttrMultiple(a, img, []viz.ImageView{
		{Method: viz.MethodOriginalImage, Title: "picture"},
		{Method: viz.MethodBlendedHeatMap, Sign: viz.All, Title: "attributions (both signs)"},
	}, viz.ImageOptions{Title: "IntegratedGradients, target " + demo.Classes[classes[0]], ColorBar: true, Width: 900, Height: 450})
	if err != nil {
		log.Fatal(err)
	}
	dir, _ := os.MkdirTemp("", "quickstart")
	defer os.RemoveAll(dir)
	if d := os.Getenv("LOUPE_QUICKSTART_DIR"); d != "" {
		dir = d // to look at the figure
	}
	if err := fig.WriteFile(filepath.Join(dir, "triangle_ig.png")); err != nil {
		log.Fatal(err)
	}
	fmt.Println("wrote triangle_ig.png")
	// Output:
	// predicted triangle, probability above 0.9: true
	// wrote triangle_ig.png
}
