package engine

import (
	"context"
	"fmt"
	"testing"

	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// TestPreparedConvWeights checks the convolution whose constant weights
// are transformed once (op.Specializer): repeated passes, passes with the
// same weights injected as another tensor, and the input gradient agree
// bit for bit, and injected weights with other values are used, not the
// prepared ones.
func TestPreparedConvWeights(t *testing.T) {
	ctx := context.Background()
	w := randn(1, 64, 64, 3, 3)
	pads := &graph.Attr{Type: graph.AttrInts, Ints: []int64{1, 1, 1, 1}}
	g := &graph.Graph{
		Inputs:       []graph.ValueInfo{{Name: "x", DType: tensor.Float32}},
		Outputs:      []graph.ValueInfo{{Name: "y"}},
		Initializers: map[string]*tensor.Tensor{"w": w},
		Opsets:       map[string]int{"": 13},
		Nodes: []*graph.Node{
			{Name: "conv", OpType: "Conv", Inputs: []string{"x", "w"}, Outputs: []string{"y"}, Attrs: map[string]*graph.Attr{"pads": pads}},
		},
	}
	m, err := Compile(g)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%T", m.nodes[0].kernel); got != "*nnops.preparedConv" {
		t.Fatalf("the Conv's kernel is %s, want the one with prepared weights", got)
	}
	x := randn(2, 2, 64, 20, 20)
	seed := randn(3, 2, 64, 20, 20)
	run := func(inject map[string]*tensor.Tensor) (y, gx *tensor.Tensor) {
		t.Helper()
		p, err := m.Forward(ctx, feed("x", x), &Options{Record: true, Inject: inject})
		if err != nil {
			t.Fatal(err)
		}
		y, _ = p.Output(0)
		gs, err := p.Backward(ctx, map[string]*tensor.Tensor{"y": seed}, []string{"x"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return y, gs["x"]
	}
	same := func(what string, a, b *tensor.Tensor) {
		t.Helper()
		for i := range a.F {
			if a.F[i] != b.F[i] {
				t.Fatalf("%s: element %d: %v against %v", what, i, a.F[i], b.F[i])
			}
		}
	}
	y1, g1 := run(nil)
	y2, g2 := run(nil)
	same("second pass", y2, y1)
	same("second gradient", g2, g1)
	wc := tensor.New(w.Shape...)
	copy(wc.F, w.F)
	y3, g3 := run(map[string]*tensor.Tensor{"w": wc})
	same("injected copy of the weights", y3, y1)
	same("gradient with an injected copy", g3, g1)
	// Other weights: the output changes as a convolution is linear in them.
	w2 := tensor.New(w.Shape...)
	for i, v := range w.F {
		w2.F[i] = 2 * v
	}
	y4, g4 := run(map[string]*tensor.Tensor{"w": w2})
	for i := range y1.F {
		if d := y4.F[i] - 2*y1.F[i]; d > 1e-3 || d < -1e-3 {
			t.Fatalf("doubled weights: output %d is %v, want about %v", i, y4.F[i], 2*y1.F[i])
		}
		if d := g4.F[i] - 2*g1.F[i]; d > 1e-3 || d < -1e-3 {
			t.Fatalf("doubled weights: gradient %d is %v, want about %v", i, g4.F[i], 2*g1.F[i])
		}
	}
}
