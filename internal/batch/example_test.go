package batch_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/loupe-ml/loupe/internal/batch"
	"github.com/loupe-ml/loupe/internal/demo"
	"github.com/loupe-ml/loupe/npy"
)

// ExampleRun explains a folder of three pictures of the built-in model
// with Saliency on Beam's direct runner, then runs the job again: the
// second run finds everything done.
func ExampleRun() {
	data, _ := os.MkdirTemp("", "data")
	out, _ := os.MkdirTemp("", "out")
	defer os.RemoveAll(data)
	defer os.RemoveAll(out)
	for c, name := range demo.Classes {
		img, _ := demo.Draw(c, 7)
		x, _ := img.Reshape(1, 3, demo.Size, demo.Size)
		npy.WriteFile(filepath.Join(data, name+".npy"), x)
	}
	cfg := batch.Config{Model: "demo", Data: data, Out: out, Method: "Saliency", Target: "pred"}
	for range 2 {
		sum, err := batch.Run(context.Background(), cfg, batch.Options{Runner: "direct"})
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%d files: %d explained, %d done before, %d failed\n", sum.Total, sum.Done, sum.Skipped, sum.Failed)
	}
	// Output:
	// 3 files: 3 explained, 0 done before, 0 failed
	// 3 files: 0 explained, 3 done before, 0 failed
}
