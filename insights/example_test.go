package insights_test

import (
	"context"
	"fmt"
	"net/http/httptest"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/insights"
	"github.com/loupe-ml/loupe/internal/demo"
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
