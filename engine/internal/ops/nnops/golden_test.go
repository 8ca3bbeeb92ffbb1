package nnops

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// goldenTensor is a float tensor in testdata/torch_golden.json.
type goldenTensor struct {
	Shape []int     `json:"shape"`
	Data  []float32 `json:"data"`
}

func (g *goldenTensor) tensor(t *testing.T) *tensor.Tensor {
	t.Helper()
	if g == nil {
		return nil
	}
	x, err := tensor.FromFloat32(append([]float32(nil), g.Data...), g.Shape...)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// goldenCase is one op applied by PyTorch (see testdata/gen_golden.py):
// inputs are the differentiable inputs, extra the ones that follow them
// (nil, an int64 vector or a float vector), grads PyTorch's gradients of
// <gout, output> with respect to inputs.
type goldenCase struct {
	Name  string `json:"name"`
	Op    string `json:"op"`
	Opset int    `json:"opset"`
	Attrs map[string]struct {
		Type string          `json:"type"`
		V    json.RawMessage `json:"v"`
	} `json:"attrs"`
	Inputs []*goldenTensor `json:"inputs"`
	Extra  []*struct {
		Int64 []int64   `json:"int64"`
		Float []float32 `json:"float"`
	} `json:"extra"`
	Output *goldenTensor   `json:"output"`
	Gout   *goldenTensor   `json:"gout"`
	Grads  []*goldenTensor `json:"grads"`
}

func (c *goldenCase) node(t *testing.T) *graph.Node {
	t.Helper()
	n := mk(c.Op, len(c.Inputs)+len(c.Extra), 1)
	for name, a := range c.Attrs {
		at := &graph.Attr{Name: name}
		var err error
		switch a.Type {
		case "ints":
			at.Type = graph.AttrInts
			err = json.Unmarshal(a.V, &at.Ints)
		case "int":
			at.Type = graph.AttrInt
			err = json.Unmarshal(a.V, &at.I)
		case "float":
			at.Type = graph.AttrFloat
			err = json.Unmarshal(a.V, &at.F)
		case "string":
			at.Type = graph.AttrString
			err = json.Unmarshal(a.V, &at.S)
		default:
			t.Fatalf("attribute %s has unknown type %q", name, a.Type)
		}
		if err != nil {
			t.Fatal(err)
		}
		n.Attrs[name] = at
	}
	return n
}

// TestTorchGolden compares forward results and gradients with PyTorch's
// (CPU, float32) on pooling with ties and ceil_mode, interpolation,
// transposed and grouped convolutions, padding and batch normalization.
func TestTorchGolden(t *testing.T) {
	raw, err := os.ReadFile("testdata/torch_golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []*goldenCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			k := build(t, c.node(t), c.Opset)
			var in []*tensor.Tensor
			for _, g := range c.Inputs {
				in = append(in, g.tensor(t))
			}
			for _, e := range c.Extra {
				switch {
				case e == nil:
					in = append(in, nil)
				case e.Int64 != nil:
					in = append(in, it(e.Int64...))
				default:
					in = append(in, ft([]int{len(e.Float)}, e.Float...))
				}
			}
			out := forward(t, k, in...)
			near(t, "output", out[0], c.Output.Shape, c.Output.Data, 1e-5)
			if c.Gout == nil {
				return
			}
			need := make([]bool, len(in))
			for i := range c.Inputs {
				need[i] = true
			}
			grads, err := k.(op.Differentiable).Backward(in, out, []*tensor.Tensor{c.Gout.tensor(t)}, need)
			if err != nil {
				t.Fatal(err)
			}
			for i, g := range c.Grads {
				near(t, "gradient of input "+string(rune('0'+i)), grads[i], g.Shape, g.Data, 1e-4)
			}
		})
	}
}
