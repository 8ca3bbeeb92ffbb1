package engine

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/loupe-ml/loupe/tensor"
)

// TestExportedModels runs models that PyTorch exported (testdata/
// gen_models.py: LSTM, GRU, LayerNormalization or its opset-13
// decomposition, GELU, shape arithmetic, slicing, Where, Split, MatMul with
// batch dimensions) and compares with PyTorch's outputs, then checks the
// input gradient by finite differences.
func TestExportedModels(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.json")
	if len(files) == 0 {
		t.Fatal("no exported models in testdata")
	}
	for _, f := range files {
		name := f[:len(f)-len(".json")]
		t.Run(filepath.Base(name), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var c struct {
				Input, Output struct {
					Shape []int
					Data  []float64
				}
			}
			if err := json.Unmarshal(b, &c); err != nil {
				t.Fatal(err)
			}
			m, err := Load(name + ".onnx")
			if err != nil {
				t.Fatal(err)
			}
			x := tensor.New(c.Input.Shape...)
			for i, v := range c.Input.Data {
				x.F[i] = float32(v)
			}
			p, err := m.Forward(context.Background(), feed("input", x), nil)
			if err != nil {
				t.Fatal(err)
			}
			y, _ := p.Output(0)
			if !tensor.SameShape(y.Shape, c.Output.Shape) {
				t.Fatalf("output shape %v, PyTorch %v", y.Shape, c.Output.Shape)
			}
			for i, v := range c.Output.Data {
				if d := math.Abs(float64(y.F[i]) - v); d > 1e-5+1e-4*math.Abs(v) {
					t.Fatalf("output %d = %g, PyTorch %g", i, y.F[i], v)
				}
			}
			directional(t, m, feed("input", x), "input", 1e-3, 1e-2)
		})
	}
}
