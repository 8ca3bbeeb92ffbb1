package onnx

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/internal/testmodels"
	"github.com/loupe-ml/loupe/tensor"
)

var modelDir = testmodels.Dir()

func TestParseOracleModels(t *testing.T) {
	tests := []struct {
		file    string
		inputs  []string
		ops     []string
		nodes   int
		weights int
	}{
		{"toy.onnx", []string{"input"}, []string{"Gemm", "Relu"}, 3, 4},
		{"cnn_s0.onnx", []string{"input"}, []string{"Conv", "BatchNormalization", "MaxPool", "AveragePool", "Flatten"}, 10, 14},
		{"multimodal_s0.onnx", []string{"image", "tabular"}, []string{"Concat"}, 10, 8},
		{"text_s0.onnx", []string{"tokens"}, []string{"Gather", "Transpose", "ReduceMean"}, 6, 5},
		{"resnet_mini_s0.onnx", []string{"input"}, []string{"Add", "GlobalAveragePool"}, 69, 102},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			g, err := ReadFile(filepath.Join(modelDir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if g.Opset() != 13 {
				t.Errorf("opset %d, want 13", g.Opset())
			}
			if len(g.Inputs) != len(tc.inputs) {
				t.Fatalf("inputs %v, want %v", g.Inputs, tc.inputs)
			}
			for i, name := range tc.inputs {
				if g.Inputs[i].Name != name {
					t.Errorf("input %d is %q, want %q", i, g.Inputs[i].Name, name)
				}
				if d := g.Inputs[i].Shape[0]; d.Param != "batch" || d.Value != -1 {
					t.Errorf("input %q: first dimension %+v, want symbolic batch", name, d)
				}
			}
			if len(g.Nodes) != tc.nodes || len(g.Initializers) != tc.weights {
				t.Errorf("%d nodes and %d initializers, want %d and %d", len(g.Nodes), len(g.Initializers), tc.nodes, tc.weights)
			}
			seen := map[string]bool{}
			for _, n := range g.Nodes {
				seen[n.OpType] = true
			}
			for _, op := range tc.ops {
				if !seen[op] {
					t.Errorf("no %s node", op)
				}
			}
			for name, w := range g.Initializers {
				if err := w.Check(); err != nil {
					t.Errorf("initializer %q: %v", name, err)
				}
			}
		})
	}
}

func TestToyWeights(t *testing.T) {
	// The toy model's lin1 weight is arange(-4, 5) reshaped to 3x3.
	g, err := ReadFile(filepath.Join(modelDir, "toy.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	var w *tensor.Tensor
	for name, x := range g.Initializers {
		if strings.Contains(name, "lin1") && strings.Contains(name, "weight") {
			w = x
		}
	}
	if w == nil {
		t.Fatalf("no lin1 weight among %d initializers", len(g.Initializers))
	}
	if !tensor.SameShape(w.Shape, []int{3, 3}) {
		t.Fatalf("lin1 weight shape %v", w.Shape)
	}
	for i, v := range w.F {
		if v != float32(i-4) {
			t.Fatalf("lin1 weight %v, want arange(-4,5)", w.F)
		}
	}
}

func TestCorruptFiles(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(modelDir, "cnn_s0.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	// Every truncation must give an error, never a panic.
	for _, n := range []int{0, 1, 2, 10, 100, len(b) / 3, len(b) / 2, len(b) - 1} {
		if _, err := Parse(b[:n]); err == nil {
			t.Errorf("truncated to %d bytes: no error", n)
		}
	}
	if _, err := Parse([]byte("this is not a model")); err == nil {
		t.Error("text file: no error")
	}
	if _, err := ReadFile("no/such/model.onnx"); err == nil || !strings.Contains(err.Error(), "no/such/model.onnx") {
		t.Errorf("missing file: error %v does not name the file", err)
	}
	// Flip bytes through the file: errors are fine, panics are not.
	for i := 0; i < len(b); i += 97 {
		c := append([]byte(nil), b...)
		c[i] ^= 0xff
		Parse(c)
	}
}

func TestHalfToFloat(t *testing.T) {
	tests := []struct {
		bits uint16
		want float32
	}{
		{0x3c00, 1}, {0xc000, -2}, {0x3800, 0.5}, {0x0000, 0}, {0x7bff, 65504}, {0x0001, 5.9604645e-08},
	}
	for _, tc := range tests {
		if got := halfToFloat(typeFloat16, tc.bits); got != tc.want {
			t.Errorf("half %#04x = %g, want %g", tc.bits, got, tc.want)
		}
	}
	if got := halfToFloat(typeBfloat16, 0x3f80); got != 1 {
		t.Errorf("bfloat16 1.0 = %g", got)
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"toy.onnx", "mlp_s0.onnx", "masked_s0.onnx", "text_s0.onnx", "multimodal_s0.onnx", "linear_s0.onnx"} {
		b, err := os.ReadFile(filepath.Join(modelDir, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := Parse(b)
		if err != nil {
			return
		}
		for name, w := range g.Initializers {
			if err := w.Check(); err != nil {
				t.Fatalf("parsed initializer %q is inconsistent: %v", name, err)
			}
		}
	})
}
