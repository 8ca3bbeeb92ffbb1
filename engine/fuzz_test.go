package engine

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/loupe-ml/loupe/onnx"
	"github.com/loupe-ml/loupe/tensor"
)

// FuzzLoadAndRun mutates model files and checks that loading and running
// them gives errors, never panics.
func FuzzLoadAndRun(f *testing.F) {
	for _, name := range []string{"toy.onnx", "mlp_softmax_s0.onnx", "text_s0.onnx", "multimodal_s0.onnx", "masked_s0.onnx"} {
		b, err := os.ReadFile(filepath.Join(modelDir, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := onnx.Parse(b)
		if err != nil {
			return
		}
		m, err := Compile(g)
		if err != nil {
			return
		}
		in := map[string]*tensor.Tensor{}
		for _, x := range m.Inputs() {
			shape := make([]int, len(x.Shape))
			size := 1
			for i, d := range x.Shape {
				shape[i] = max(d.Value, 1)
				size *= shape[i]
			}
			if size > 1<<16 {
				return
			}
			dt := x.DType
			if dt == 0 {
				dt = tensor.Float32
			}
			in[x.Name] = tensor.Zeros(dt, shape)
		}
		p, err := m.Forward(context.Background(), in, &Options{Record: true})
		if err != nil {
			return
		}
		y, err := p.Output(0)
		if err != nil || y.DType != tensor.Float32 {
			return
		}
		p.Backward(context.Background(), map[string]*tensor.Tensor{m.OutputNames()[0]: tensor.New(y.Shape...)}, nil, nil)
	})
}
