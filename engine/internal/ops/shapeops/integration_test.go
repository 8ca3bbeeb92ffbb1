//go:build loupe_integration

// This test runs the PyTorch exports of engine/testdata through a small
// interpreter of its own, not the engine, with this package's kernels and
// those of mathops and nnops for the other ops. It runs only with:
// go test -tags loupe_integration ./engine/internal/ops/shapeops/

package shapeops_test

import (
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/engine/internal/ops/mathops"
	"github.com/loupe-ml/loupe/engine/internal/ops/nnops"
	"github.com/loupe-ml/loupe/engine/internal/ops/shapeops"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/internal/testmodels"
	"github.com/loupe-ml/loupe/onnx"
	"github.com/loupe-ml/loupe/tensor"
)

type exported struct {
	Input, Output struct {
		Shape []int     `json:"shape"`
		Data  []float64 `json:"data"`
	}
}

type interp struct {
	g     *graph.Graph
	ks    []op.Kernel
	mine  int
	input string
}

func newInterp(t *testing.T, g *graph.Graph) *interp {
	reg := map[string]op.Factory{}
	nnops.Register(reg)
	mathops.Register(reg)
	ours := map[string]op.Factory{}
	shapeops.Register(ours)
	for k, f := range ours {
		reg[k] = f
	}
	it := &interp{g: g, input: g.Inputs[0].Name}
	for _, n := range g.Nodes {
		f, ok := reg[n.OpType]
		if !ok {
			t.Fatalf("no kernel for %s", n.OpType)
		}
		if _, ok := ours[n.OpType]; ok {
			it.mine++
		}
		k, err := f(n, g.Opset())
		if err != nil {
			t.Fatal(err)
		}
		it.ks = append(it.ks, k)
	}
	return it
}

func (it *interp) forward(t *testing.T, x *tensor.Tensor) map[string]*tensor.Tensor {
	vals := map[string]*tensor.Tensor{it.input: x}
	for k, v := range it.g.Initializers {
		vals[k] = v
	}
	for i, n := range it.g.Nodes {
		in := make([]*tensor.Tensor, len(n.Inputs))
		for j, s := range n.Inputs {
			if s != "" {
				in[j] = vals[s]
			}
		}
		out, err := it.ks[i].Forward(in)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		for j, s := range n.Outputs {
			if s != "" && j < len(out) {
				vals[s] = out[j]
			}
		}
	}
	return vals
}

// grad returns d<seed, output>/d input by reverse mode over the nodes.
func (it *interp) grad(t *testing.T, vals map[string]*tensor.Tensor, seed *tensor.Tensor) *tensor.Tensor {
	grads := map[string]*tensor.Tensor{it.g.Outputs[0].Name: seed}
	for i := len(it.g.Nodes) - 1; i >= 0; i-- {
		n := it.g.Nodes[i]
		var gout, out []*tensor.Tensor
		has := false
		for _, s := range n.Outputs {
			gout = append(gout, grads[s])
			out = append(out, vals[s])
			has = has || grads[s] != nil
		}
		if !has {
			continue
		}
		in := make([]*tensor.Tensor, len(n.Inputs))
		need := make([]bool, len(n.Inputs))
		for j, s := range n.Inputs {
			if s != "" {
				in[j] = vals[s]
				need[j] = in[j].DType == tensor.Float32
			}
		}
		d, ok := it.ks[i].(op.Differentiable)
		if !ok {
			continue
		}
		g, err := d.Backward(in, out, gout, need)
		if err != nil {
			t.Fatalf("%s backward: %v", n, err)
		}
		for j, s := range n.Inputs {
			if s == "" || j >= len(g) || g[j] == nil || !need[j] {
				continue
			}
			if !tensor.SameShape(g[j].Shape, in[j].Shape) {
				t.Fatalf("%s: gradient %d has shape %v, input %v", n, j, g[j].Shape, in[j].Shape)
			}
			if cur := grads[s]; cur != nil {
				sum := tensor.New(cur.Shape...)
				for e := range sum.F {
					sum.F[e] = cur.F[e] + g[j].F[e]
				}
				grads[s] = sum
			} else {
				grads[s] = g[j]
			}
		}
	}
	return grads[it.input]
}

func TestExportedModels(t *testing.T) {
	for _, name := range []string{"seq_op13", "seq_op17", "shapes_op13", "spatial_op13"} {
		t.Run(name, func(t *testing.T) {
			g, err := onnx.ReadFile(testmodels.Engine(name + ".onnx"))
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(testmodels.Engine(name + ".json"))
			if err != nil {
				t.Fatal(err)
			}
			var ex exported
			if err := json.Unmarshal(b, &ex); err != nil {
				t.Fatal(err)
			}
			x := tensor.New(ex.Input.Shape...)
			for i, v := range ex.Input.Data {
				x.F[i] = float32(v)
			}
			it := newInterp(t, g)
			vals := it.forward(t, x)
			y := vals[g.Outputs[0].Name]
			if !tensor.SameShape(y.Shape, ex.Output.Shape) {
				t.Fatalf("output shape %v, want %v", y.Shape, ex.Output.Shape)
			}
			for i, v := range ex.Output.Data {
				if math.Abs(float64(y.F[i])-v) > 1e-4 {
					t.Fatalf("output %d is %g, PyTorch %g", i, y.F[i], v)
				}
			}
			seed := tensor.New(y.Shape...)
			for i := range seed.F {
				seed.F[i] = float32(math.Sin(float64(i) + 1))
			}
			gx := it.grad(t, vals, seed)
			if gx == nil {
				t.Fatal("no input gradient")
			}
			loss := func() float64 {
				y := it.forward(t, x)[g.Outputs[0].Name]
				s := 0.0
				for i, v := range y.F {
					s += float64(v) * float64(seed.F[i])
				}
				return s
			}
			const eps = 1e-2
			for e := 0; e < x.Len(); e += 7 {
				o := x.F[e]
				x.F[e] = o + eps
				up := loss()
				x.F[e] = o - eps
				down := loss()
				x.F[e] = o
				fd := (up - down) / (2 * eps)
				if math.Abs(fd-float64(gx.F[e])) > 2e-2*math.Max(1, math.Abs(fd)) {
					t.Errorf("input element %d: finite difference %g, backward %g", e, fd, gx.F[e])
				}
			}
			t.Logf("%d of %d nodes ran shapeops kernels", it.mine, len(g.Nodes))
		})
	}
}
