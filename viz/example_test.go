package viz_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/loupe-ml/loupe/tensor"
	"github.com/loupe-ml/loupe/viz"
)

// ExampleImageAttrMultiple draws an attribution map three ways side by
// side, under a title, with color bars, and writes the figure as PNG and
// SVG.
func ExampleImageAttrMultiple() {
	// A 3×8×8 image and attributions that light its center.
	img, attr := tensor.New(3, 8, 8), tensor.New(3, 8, 8)
	for i := range img.F {
		img.F[i] = 0.5
		if y, x := i%64/8, i%8; y >= 2 && y < 6 && x >= 2 && x < 6 {
			attr.F[i] = 1
		}
	}
	fig, err := viz.ImageAttrMultiple(attr, img, []viz.ImageView{
		{Method: viz.MethodOriginalImage, Title: "image"},
		{Method: viz.MethodHeatMap, Sign: viz.Positive, Title: "heat map"},
		{Method: viz.MethodBlendedHeatMap, Sign: viz.Positive, Title: "blended"},
	}, viz.ImageOptions{Title: "Integrated gradients", ColorBar: true, Width: 900, Height: 360})
	if err != nil {
		fmt.Println(err)
		return
	}
	dir, _ := os.MkdirTemp("", "viz")
	defer os.RemoveAll(dir)
	for _, name := range []string{"figure.png", "figure.svg"} {
		if err := fig.WriteFile(filepath.Join(dir, name)); err != nil {
			fmt.Println(err)
		}
	}
	fmt.Println(fig.PNG().Bounds().Size(), len(fig.Panels), "views")
	// Output: (900,360) 3 views
}
