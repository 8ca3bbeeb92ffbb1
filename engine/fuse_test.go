package engine

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/tensor"
)

// TestFusions checks that a pass without recording, which runs Conv ->
// BatchNormalization -> Relu chains as one folded convolution, computes what
// the node-by-node pass computes (to float32 rounding), and that asking for
// a tensor inside a chain runs that chain node by node.
func TestFusions(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		file   string
		shape  []int
		chains int // at least this many chains fused
		inner  string
	}{
		{"cnn_s0.onnx", []int{4, 3, 32, 32}, 2, "/conv2/Conv_output_0"},
		{"resnet_mini_s0.onnx", []int{2, 3, 224, 224}, 10, "/layer1/layer1.0/conv1/Conv_output_0"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			m := load(t, tc.file)
			if len(m.fusions) < tc.chains {
				t.Fatalf("%d chains fused, want at least %d", len(m.fusions), tc.chains)
			}
			// A fused chain runs the convolution specialized to its
			// folded weights (prepared once), with or without a ReLU.
			for _, f := range m.fusions {
				k := f.fused.kernel
				if r, ok := k.(reluAfter); ok {
					k = r.Kernel
				}
				if _, spec := m.nodes[f.head].kernel.(op.Specializer); spec && k == m.nodes[f.head].kernel {
					t.Errorf("chain at %s runs the unspecialized convolution", m.nodes[f.head].node)
				}
			}
			x := randn(3, tc.shape...)
			rec, err := m.Forward(ctx, feed("input", x), &Options{Record: true, Taps: []string{tc.inner}})
			if err != nil {
				t.Fatal(err)
			}
			want, _ := rec.Output(0)
			fused, err := m.Forward(ctx, feed("input", x), nil)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := fused.Output(0)
			scale := 0.0
			for _, v := range want.F {
				scale = max(scale, math.Abs(float64(v)))
			}
			if d := float64(tensor.MaxAbsDiff(got.F, want.F)); d > 1e-5*scale {
				t.Errorf("fused output differs by %g (scale %g)", d, scale)
			}
			// A tap inside a chain: that chain runs node by node, and the
			// tapped value is the recorded one (chains before it still run
			// fused: to rounding).
			tapped, err := m.Forward(ctx, feed("input", x), &Options{Taps: []string{tc.inner}})
			if err != nil {
				t.Fatal(err)
			}
			v, err := tapped.Value(tc.inner)
			if err != nil {
				t.Fatal(err)
			}
			r, _ := rec.Value(tc.inner)
			rs := 0.0
			for _, e := range r.F {
				rs = max(rs, math.Abs(float64(e)))
			}
			if d := float64(tensor.MaxAbsDiff(v.F, r.F)); d > 1e-5*rs {
				t.Errorf("tapped %s differs from the recorded value by %g", tc.inner, d)
			}
			// Injecting inside a chain: the chain's rest runs on the value.
			inj, err := m.Forward(ctx, feed("input", x), &Options{Inject: map[string]*tensor.Tensor{tc.inner: r}})
			if err != nil {
				t.Fatal(err)
			}
			y, _ := inj.Output(0)
			if d := float64(tensor.MaxAbsDiff(y.F, want.F)); d > 1e-5*scale {
				t.Errorf("output with %s injected differs by %g", tc.inner, d)
			}
		})
	}
}

// TestFusedGradients checks Options.Fuse on a recorded pass: the input
// gradient through folded chains equals the node-by-node one to float32
// rounding, and what a fused pass cannot answer is refused, not answered
// wrongly (rules for fused nodes; gradients with respect to a chain's
// inner tensors or weights).
func TestFusedGradients(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		file  string
		shape []int
		inner string
	}{
		{"cnn_s0.onnx", []int{3, 3, 32, 32}, "/conv2/Conv_output_0"},
		{"resnet_mini_s0.onnx", []int{1, 3, 224, 224}, "/layer1/layer1.0/conv1/Conv_output_0"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			m := load(t, tc.file)
			x := randn(5, tc.shape...)
			out := m.OutputNames()[0]
			grad := func(fuse bool) *tensor.Tensor {
				p, err := m.Forward(ctx, feed("input", x), &Options{Record: true, Fuse: fuse})
				if err != nil {
					t.Fatal(err)
				}
				if fuse && len(p.fused) == 0 {
					t.Fatal("no chain ran fused")
				}
				y, _ := p.Output(0)
				seed := randn(6, y.Shape...)
				g, err := p.Backward(ctx, map[string]*tensor.Tensor{out: seed}, []string{"input"}, nil)
				if err != nil {
					t.Fatal(err)
				}
				return g["input"]
			}
			want, got := grad(false), grad(true)
			scale := 0.0
			for _, v := range want.F {
				scale = max(scale, math.Abs(float64(v)))
			}
			if d := float64(tensor.MaxAbsDiff(got.F, want.F)); d > 1e-5*scale || scale == 0 {
				t.Errorf("fused input gradient differs by %g (scale %g)", d, scale)
			}
			p, err := m.Forward(ctx, feed("input", x), &Options{Record: true, Fuse: true})
			if err != nil {
				t.Fatal(err)
			}
			y, _ := p.Output(0)
			seeds := map[string]*tensor.Tensor{out: y}
			keep := OpRules{"Relu": func(c *RuleContext) ([]*tensor.Tensor, error) { return c.Default() }}
			if _, err := p.Backward(ctx, seeds, []string{"input"}, keep); err == nil {
				t.Error("a Relu rule on a pass that fused its Relus: accepted")
			}
			if _, err := p.Backward(ctx, seeds, []string{tc.inner}, nil); err == nil {
				t.Error("gradient with respect to a fused chain's inner tensor: accepted")
			}
			f := p.m.fusions[0]
			w := p.m.names[p.m.nodes[f.head].in[1]]
			if _, err := p.Backward(ctx, seeds, []string{w}, nil); err == nil {
				t.Errorf("gradient with respect to the weights %q of a fused chain: accepted", w)
			}
			// An Add -> Relu chain keeps both of the Add's inputs: their
			// gradients are the unfused ones; its sum is inside.
			for _, f := range p.m.fusions {
				if !f.allInputs {
					continue
				}
				head := p.m.nodes[f.head]
				wrt := []string{p.m.names[head.in[0]], p.m.names[head.in[1]]}
				grads := func(fuse bool) map[string]*tensor.Tensor {
					q, err := m.Forward(ctx, feed("input", x), &Options{Record: true, Fuse: fuse})
					if err != nil {
						t.Fatal(err)
					}
					g, err := q.Backward(ctx, seeds, wrt, nil)
					if err != nil {
						t.Fatalf("fuse %v: gradient with respect to %v: %v", fuse, wrt, err)
					}
					return g
				}
				want, got := grads(false), grads(true)
				for _, name := range wrt {
					scale := 0.0
					for _, v := range want[name].F {
						scale = max(scale, math.Abs(float64(v)))
					}
					if d := float64(tensor.MaxAbsDiff(got[name].F, want[name].F)); d > 1e-5*scale || scale == 0 {
						t.Errorf("gradient at %s, input of fused %s: differs by %g (scale %g)", name, head.node, d, scale)
					}
				}
				sum := p.m.names[f.inner[0]]
				if _, err := p.Backward(ctx, seeds, []string{sum}, nil); err == nil {
					t.Errorf("gradient with respect to %q inside a fused Add -> Relu: accepted", sum)
				}
				return
			}
			if tc.file == "resnet_mini_s0.onnx" {
				t.Error("no Add -> Relu chain fused")
			}
		})
	}
}

// TestFusedWithRules checks Options.Rules: chains whose nodes the rules
// leave alone run fused, a Conv -> BatchNormalization -> Relu chain with a
// Relu rule runs folded up to its Relu, and a chain with a ruled node runs
// as exported; Backward with those rules equals the unfused pass's to
// float32 rounding, and refuses rules for a node a pass ran fused.
func TestFusedWithRules(t *testing.T) {
	ctx := context.Background()
	m := load(t, "resnet_mini_s0.onnx")
	x := randn(7, 2, 3, 224, 224)
	out := m.OutputNames()[0]
	// Relu passes the gradient where its output is positive, doubled (a
	// rule that differs from the op's own gradient).
	relu := OpRules{"Relu": func(c *RuleContext) ([]*tensor.Tensor, error) {
		g := tensor.New(c.GradOut[0].Shape...)
		for i, v := range c.Out[0].F {
			if v > 0 {
				g.F[i] = 2 * c.GradOut[0].F[i]
			}
		}
		return []*tensor.Tensor{g}, nil
	}}
	grad := func(o *Options, rules Rules) (*tensor.Tensor, *Pass) {
		p, err := m.Forward(ctx, feed("input", x), o)
		if err != nil {
			t.Fatal(err)
		}
		y, _ := p.Output(0)
		g, err := p.Backward(ctx, map[string]*tensor.Tensor{out: randn(8, y.Shape...)}, []string{"input"}, rules)
		if err != nil {
			t.Fatal(err)
		}
		return g["input"], p
	}
	want, _ := grad(&Options{Record: true}, relu)
	got, p := grad(&Options{Record: true, Fuse: true, Rules: relu}, relu)
	trimmed := 0
	for head, f := range p.fused {
		for _, ni := range append([]int{head}, f.skip...) {
			if op := p.m.nodes[ni].node.OpType; op == "Relu" {
				t.Fatalf("a Relu ran fused although the rules cover it (chain at %s)", p.m.nodes[head].node)
			}
		}
		for i := range p.m.fusions {
			if p.m.fusions[i].trim == f {
				trimmed++
			}
		}
	}
	if trimmed == 0 {
		t.Fatal("no Conv -> BatchNormalization chain ran folded up to its Relu")
	}
	scale := 0.0
	for _, v := range want.F {
		scale = max(scale, math.Abs(float64(v)))
	}
	if d := float64(tensor.MaxAbsDiff(got.F, want.F)); d > 1e-5*scale || scale == 0 {
		t.Errorf("gradient with rules through trimmed chains differs by %g (scale %g)", d, scale)
	}
	// A rule for a node the pass ran fused is refused, naming it.
	q, err := m.Forward(ctx, feed("input", x), &Options{Record: true, Fuse: true})
	if err != nil {
		t.Fatal(err)
	}
	y, _ := q.Output(0)
	if _, err := q.Backward(ctx, map[string]*tensor.Tensor{out: y}, []string{"input"}, relu); err == nil || !strings.Contains(err.Error(), "Relu") {
		t.Errorf("Relu rule on a pass that fused its Relus: error %v", err)
	}
	// Rules on Conv: no convolution chain is fused.
	conv := OpRules{"Conv": func(c *RuleContext) ([]*tensor.Tensor, error) { return c.Default() }}
	r, err := m.Forward(ctx, feed("input", x), &Options{Record: true, Fuse: true, Rules: conv})
	if err != nil {
		t.Fatal(err)
	}
	for head := range r.fused {
		if r.m.nodes[head].node.OpType == "Conv" {
			t.Fatalf("chain at %s ran fused although the rules cover its Conv", r.m.nodes[head].node)
		}
	}
}
