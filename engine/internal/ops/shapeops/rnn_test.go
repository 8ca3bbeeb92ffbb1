package shapeops

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/engine/internal/op/optest"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

type goldenTensor struct {
	Shape []int     `json:"shape"`
	Data  []float64 `json:"data"`
}

type goldenCase struct {
	Name    string                  `json:"name"`
	Op      string                  `json:"op"`
	Attrs   map[string]any          `json:"attrs"`
	Inputs  map[string]goldenTensor `json:"inputs"`
	Outputs map[string]goldenTensor `json:"outputs"`
}

func (g goldenTensor) float() *tensor.Tensor {
	t := tensor.New(g.Shape...)
	for i, v := range g.Data {
		t.F[i] = float32(v)
	}
	return t
}

func (g goldenTensor) int64() *tensor.Tensor {
	t := tensor.NewInt(g.Shape...)
	for i, v := range g.Data {
		t.I[i] = int64(v)
	}
	return t
}

func loadGolden(t *testing.T) []goldenCase {
	t.Helper()
	b, err := os.ReadFile("testdata/rnn_golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Cases []goldenCase `json:"cases"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f.Cases
}

// goldenNode builds the node and ONNX-ordered inputs of a golden case.
func goldenNode(c goldenCase) (*graph.Node, []*tensor.Tensor, []string) {
	n := mkNode(c.Op)
	for k, v := range c.Attrs {
		switch v := v.(type) {
		case string:
			n.Attrs[k] = aStr(k, v)
		case float64:
			n.Attrs[k] = aInt(k, int64(v))
		}
	}
	names := []string{"X", "W", "R", "B", "sequence_lens", "initial_h"}
	outs := []string{"Y", "Y_h"}
	if c.Op == "LSTM" {
		names = append(names, "initial_c")
		outs = append(outs, "Y_c")
	}
	in := make([]*tensor.Tensor, len(names))
	for i, name := range names {
		g, ok := c.Inputs[name]
		if !ok {
			continue
		}
		if name == "sequence_lens" {
			in[i] = g.int64()
		} else {
			in[i] = g.float()
		}
	}
	return n, in, outs
}

func TestRNNGolden(t *testing.T) {
	for _, c := range loadGolden(t) {
		t.Run(c.Name, func(t *testing.T) {
			n, in, outs := goldenNode(c)
			k := build(t, n, 14)
			got := run(t, k, in...)
			for j, name := range outs {
				want(t, name, got[j], c.Outputs[name].float(), 2e-5)
			}
		})
	}
}

func TestRNNGradCheck(t *testing.T) {
	for _, c := range loadGolden(t) {
		t.Run(c.Name, func(t *testing.T) {
			n, in, _ := goldenNode(c)
			k := build(t, n, 14)
			var wrt []int
			for i, x := range in {
				if x != nil && x.DType == tensor.Float32 {
					wrt = append(wrt, i)
				}
			}
			optest.GradCheck(t, k, in, wrt, optest.Options{Eps: 1e-2, Tol: 2e-2, Seed: 3})
		})
	}
}

// TestRNNBackwardPartial checks that gradients are only computed where
// asked, and that a nil output gradient counts as zero.
func TestRNNBackwardPartial(t *testing.T) {
	c := loadGolden(t)[0]
	n, in, _ := goldenNode(c)
	k := build(t, n, 14).(interface {
		Forward([]*tensor.Tensor) ([]*tensor.Tensor, error)
		Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error)
	})
	out := run(t, k, in...)
	gout := []*tensor.Tensor{nil, optest.Rand(1, out[1].Shape...), nil}
	need := make([]bool, len(in))
	need[0] = true
	g, err := k.Backward(in, out, gout, need)
	if err != nil {
		t.Fatal(err)
	}
	if g[0] == nil || !tensor.SameShape(g[0].Shape, in[0].Shape) {
		t.Fatalf("no X gradient: %v", g[0])
	}
	for i := 1; i < len(g); i++ {
		if g[i] != nil {
			t.Fatalf("gradient %d computed without need", i)
		}
	}
}

func TestRNNErrors(t *testing.T) {
	base := func(op string, attrs ...*graph.Attr) *graph.Node {
		return mkNode(op, append([]*graph.Attr{aInt("hidden_size", 2)}, attrs...)...)
	}
	bad := []struct {
		name string
		n    *graph.Node
		sub  string
	}{
		{"direction", base("LSTM", aStr("direction", "sideways")), "direction"},
		{"activations", base("LSTM", aStrs("activations", "Relu", "Tanh", "Tanh")), "activations"},
		{"clip", base("GRU", aFloat("clip", 3)), "clip"},
		{"input_forget", base("LSTM", aInt("input_forget", 1)), "input_forget"},
		{"layout", base("GRU", aInt("layout", 2)), "layout"},
		{"peepholes", func() *graph.Node {
			n := base("LSTM")
			n.Inputs = []string{"x", "w", "r", "", "", "", "", "p"}
			return n
		}(), "peephole"},
	}
	for _, b := range bad {
		err := buildErr(b.n, 14)
		if err == nil || !strings.Contains(err.Error(), b.sub) {
			t.Errorf("%s: error %v, want one about %s", b.name, err, b.sub)
		}
	}
	// Default activations spelled out are accepted.
	build(t, base("GRU", aStrs("activations", "Sigmoid", "Tanh", "Sigmoid", "Tanh"), aStr("direction", "bidirectional")), 14)

	k := build(t, base("LSTM"), 14)
	x := optest.Rand(1, 3, 1, 2)
	w := optest.Rand(2, 1, 8, 2)
	r := optest.Rand(3, 1, 8, 2)
	wantErr(t, k, "input 0 (X)", optest.Rand(1, 3, 2), w, r)
	wantErr(t, k, "input 1 (W)", x, optest.Rand(2, 1, 8, 3), r)
	wantErr(t, k, "input 2 (R)", x, w, optest.Rand(2, 1, 6, 2))
	wantErr(t, k, "input 3 (B)", x, w, r, optest.Rand(4, 1, 8))
	wantErr(t, k, "sequence_lens", x, w, r, nil, ints(4))
	wantErr(t, k, "initial_h", x, w, r, nil, nil, optest.Rand(5, 1, 2, 2))
	wantErr(t, k, "initial_c", x, w, r, nil, nil, nil, optest.Rand(5, 2, 1, 2))
	wantErr(t, k, "P", x, w, r, nil, nil, nil, nil, optest.Rand(6, 1, 6))
	wantErr(t, k, "int64", x, ints(1), r)
}
