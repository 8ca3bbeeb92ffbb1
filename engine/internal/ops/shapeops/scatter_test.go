package shapeops

import (
	"testing"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/engine/internal/op/optest"
	"github.com/loupe-ml/loupe/tensor"
)

// TestScatterGradConventions checks the gradients where duplicates, ties
// and zeros matter against values PyTorch's autograd gives for
// scatter_reduce (include_self=True) and index_put.
func TestScatterGradConventions(t *testing.T) {
	g := ft(sh(3), 1, 10, 100)
	cases := []struct {
		name, red string
		x, u      *tensor.Tensor
		idx       *tensor.Tensor
		y, gx, gu *tensor.Tensor
	}{
		{"max ties", "max", ft(sh(3), 1, 5, 2), ft(sh(4), 5, 3, 2, 7), ints(1, 1, 2, 0),
			ft(sh(3), 7, 5, 2), ft(sh(3), 0, 5, 50), ft(sh(4), 5, 0, 50, 1)},
		{"min ties", "min", ft(sh(3), 1, 5, 2), ft(sh(4), 5, 3, 2, 7), ints(1, 1, 2, 0),
			ft(sh(3), 1, 3, 2), ft(sh(3), 1, 0, 50), ft(sh(4), 0, 10, 50, 0)},
		{"mul", "mul", ft(sh(3), 1, 5, 2), ft(sh(4), 5, 3, 2, 7), ints(1, 1, 2, 0),
			ft(sh(3), 7, 75, 4), ft(sh(3), 7, 150, 200), ft(sh(4), 150, 250, 200, 1)},
		{"mul zeros", "mul", ft(sh(3), 2, 0, 3), ft(sh(4), 0, 4, 5, 0), ints(0, 1, 1, 2),
			ft(sh(3), 0, 0, 0), ft(sh(3), 0, 200, 0), ft(sh(4), 2, 0, 0, 300)},
		{"none duplicates", "none", ft(sh(3), 1, 2, 3), ft(sh(3), 7, 8, 9), ints(1, 1, 0),
			ft(sh(3), 9, 8, 3), ft(sh(3), 0, 0, 100), ft(sh(3), 10, 10, 1)},
		{"add duplicates", "add", ft(sh(3), 1, 2, 3), ft(sh(3), 7, 8, 9), ints(1, 1, 0),
			ft(sh(3), 10, 17, 3), ft(sh(3), 1, 10, 100), ft(sh(3), 10, 10, 1)},
	}
	for _, c := range cases {
		k := build(t, mkNode("ScatterElements", aStr("reduction", c.red)), 18)
		in := []*tensor.Tensor{c.x, c.idx, c.u}
		out := run(t, k, in...)
		want(t, c.name+" forward", out[0], c.y, 1e-6)
		gr, err := k.(op.Differentiable).Backward(in, out, []*tensor.Tensor{g}, []bool{true, true, true})
		if err != nil {
			t.Fatal(err)
		}
		if gr[1] != nil {
			t.Fatalf("%s: gradient for the indices", c.name)
		}
		want(t, c.name+" data grad", gr[0], c.gx, 1e-6)
		want(t, c.name+" updates grad", gr[2], c.gu, 1e-6)
		// The same through ScatterND with 1-tuples.
		kn := build(t, mkNode("ScatterND", aStr("reduction", c.red)), 18)
		idx := it(sh(c.idx.Len(), 1), c.idx.I...)
		inN := []*tensor.Tensor{c.x, idx, c.u}
		outN := run(t, kn, inN...)
		want(t, c.name+" ND forward", outN[0], c.y, 1e-6)
		gr, err = kn.(op.Differentiable).Backward(inN, outN, []*tensor.Tensor{nil}, []bool{false, false, true})
		if err != nil {
			t.Fatal(err)
		}
		if gr[0] != nil {
			t.Fatalf("%s: data gradient not asked for", c.name)
		}
		want(t, c.name+" ND nil gout", gr[2], ft(sh(c.u.Len()), make([]float32, c.u.Len())...), 0)
	}
}

func TestScatterGatherNDErrors(t *testing.T) {
	x := ft(sh(3, 4))
	gn := build(t, mkNode("GatherND"), 13)
	wantErr(t, gn, "index 4 (input 1, tuple 1, position 1) is out of range for axis 1 of size 4", x, it(sh(2, 2), 0, 0, 1, 4))
	wantErr(t, gn, "index -4", x, it(sh(1, 1), -4))
	wantErr(t, gn, "do not fit", x, it(sh(1, 3), 0, 0, 0))
	wantErr(t, gn, "want int64", x, ft(sh(1, 1), 0))
	wantErr(t, gn, "scalar", x, tensor.ScalarInt(0))
	wantErr(t, gn, "input 1 is missing", x)
	gb := build(t, mkNode("GatherND", aInt("batch_dims", 1)), 13)
	wantErr(t, gb, "batch axes differ", x, it(sh(2, 1), 0, 0))
	wantErr(t, gb, "batch_dims 1 is out of range", x, it(sh(1), 0))
	if err := buildErr(mkNode("GatherND", aInt("batch_dims", -1)), 13); err == nil {
		t.Fatal("negative batch_dims accepted")
	}
	// Repeated tuples add their gradients.
	optest.GradCheck(t, gn, []*tensor.Tensor{optest.Rand(4, 3, 4), it(sh(3, 1), 2, 2, -1)}, []int{0}, optest.Options{})
	want(t, "bool", run(t, gn, bt(sh(2, 2), true, false, false, true), it(sh(2, 2), 1, 1, 0, 1))[0], bt(sh(2), true, false), 0)

	sn := build(t, mkNode("ScatterND"), 13)
	wantErr(t, sn, "input 2 (updates) has shape [2 4], want [1 4]", x, it(sh(1, 1), 0), ft(sh(2, 4)))
	wantErr(t, sn, "input 2 (updates) is int64", x, it(sh(1, 1), 0), it(sh(1, 4), 0, 0, 0, 0))
	wantErr(t, sn, "index 3", x, it(sh(1, 1), 3), ft(sh(1, 4)))
	wantErr(t, sn, "input 2 is missing", x, it(sh(1, 1), 0))
	wantErr(t, build(t, mkNode("ScatterND", aStr("reduction", "add")), 16), "bool", bt(sh(1), true), it(sh(1, 1), 0), bt(sh(1), false))
	want(t, "bool", run(t, sn, bt(sh(2), true, false), it(sh(1, 1), 1), bt(sh(1), true))[0], bt(sh(2), true, true), 0)
	if err := buildErr(mkNode("ScatterND", aStr("reduction", "mean")), 18); err == nil {
		t.Fatal("reduction mean accepted")
	}
	se := build(t, mkNode("ScatterElements", aInt("axis", 1)), 13)
	wantErr(t, se, "must be equal", x, it(sh(1, 2), 0, 0), ft(sh(1, 1)))
	wantErr(t, se, "ranks differ", x, ints(0), ft(sh(1)))
	wantErr(t, se, "larger than", x, it(sh(4, 1), 0, 0, 0, 0), ft(sh(4, 1)))
	wantErr(t, se, "index 4", x, it(sh(1, 1), 4), ft(sh(1, 1)))
	wantErr(t, build(t, mkNode("ScatterElements", aInt("axis", 2)), 13), "axis 2", x, it(sh(1, 1), 0), ft(sh(1, 1)))
	// The inputs are left alone.
	x0 := x.Clone()
	run(t, se, x, it(sh(1, 1), 2), ft(sh(1, 1), 9))
	want(t, "input kept", x, x0, 0)
	// Empty updates leave a copy of the data.
	want(t, "empty", run(t, se, x, tensor.NewInt(3, 0), tensor.New(3, 0))[0], x0, 0)
}
