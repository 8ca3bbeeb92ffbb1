package attr

import (
	"context"
	"testing"

	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// TestDeepLiftPlainWhereNoDifference checks the rules' fallback: where a
// Relu's or a MaxPool's input equals its baseline's (|Δin| < eps) the op's
// own gradient passes. Both models map x = [1, -1] and its zero baseline
// to the same value before the rule's node (x·[1, 1] = 0 in both), so the
// attribution is x times the plain gradient: [1, -1]; a rule that dropped
// the fallback would give zeros.
func TestDeepLiftPlainWhereNoDifference(t *testing.T) {
	ones := tensor.New(2, 2)
	for i := range ones.F {
		ones.F[i] = 1
	}
	one := tensor.New(1)
	one.F[0] = 1
	for _, tc := range []struct {
		name  string
		nodes []*graph.Node
	}{
		// Relu(x·W + 1): its input is 1 for x and for the baseline, where
		// the ReLU's gradient is 1.
		{"relu", []*graph.Node{
			{Name: "mm", OpType: "MatMul", Inputs: []string{"x", "w"}, Outputs: []string{"t"}},
			{Name: "add", OpType: "Add", Inputs: []string{"t", "one"}, Outputs: []string{"u"}},
			{Name: "relu", OpType: "Relu", Inputs: []string{"u"}, Outputs: []string{"v"}},
			{Name: "flat", OpType: "Flatten", Inputs: []string{"v"}, Outputs: []string{"y"}},
		}},
		// MaxPool over the two equal entries of x·W: the gradient goes to
		// the first.
		{"maxpool", []*graph.Node{
			{Name: "mm", OpType: "MatMul", Inputs: []string{"x", "w"}, Outputs: []string{"t"}},
			{Name: "pool", OpType: "MaxPool", Inputs: []string{"t"}, Outputs: []string{"v"},
				Attrs: map[string]*graph.Attr{"kernel_shape": {Name: "kernel_shape", Type: graph.AttrInts, Ints: []int64{2}}}},
			{Name: "flat", OpType: "Flatten", Inputs: []string{"v"}, Outputs: []string{"y"}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &graph.Graph{
				Inputs:       []graph.ValueInfo{{Name: "x", DType: tensor.Float32}},
				Outputs:      []graph.ValueInfo{{Name: "y"}},
				Initializers: map[string]*tensor.Tensor{"w": ones, "one": one},
				Opsets:       map[string]int{"": 13},
				Nodes:        tc.nodes,
			}
			m, err := engine.Compile(g)
			if err != nil {
				t.Fatal(err)
			}
			nt, err := NewNet(m)
			if err != nil {
				t.Fatal(err)
			}
			x := tensor.New(1, 1, 2)
			x.F[0], x.F[1] = 1, -1
			for _, strict := range []bool{false, true} {
				r, err := (&DeepLift{Net: nt, Strict: strict}).Attribute(context.Background(), []*tensor.Tensor{x}, Options{Target: Class(0)})
				if err != nil {
					t.Fatal(err)
				}
				if got := r.Attributions[0].F; got[0] != 1 || got[1] != -1 {
					t.Errorf("strict %v: attributions %v, want [1 -1]", strict, got)
				}
			}
		})
	}
}
