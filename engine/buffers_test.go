package engine

import (
	"context"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"

	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// TestBuffersReused runs passes of several batch sizes, in turn and at
// once, on one model whose pool they share: every output must equal the
// one a model with an empty pool computes, bit for bit, and a second pass
// must allocate much less than the first.
func TestBuffersReused(t *testing.T) {
	ctx := context.Background()
	m := load(t, "resnet_mini_s0.onnx")
	// A recorded pass runs unfused: its outputs differ from a fused
	// pass's by rounding, so each mode has its own reference.
	fresh := func(x *tensor.Tensor, record bool) *tensor.Tensor {
		f := load(t, "resnet_mini_s0.onnx")
		p, err := f.Forward(ctx, feed("input", x), &Options{Record: record})
		if err != nil {
			t.Fatal(err)
		}
		y, _ := p.Output(0)
		return y
	}
	xs := []*tensor.Tensor{randn(1, 1, 3, 224, 224), randn(2, 3, 3, 224, 224), randn(3, 1, 3, 224, 224)}
	want := make([][2]*tensor.Tensor, len(xs))
	for i, x := range xs {
		want[i] = [2]*tensor.Tensor{fresh(x, false), fresh(x, true)}
	}
	check := func(i int, record bool, y *tensor.Tensor) {
		w := want[i][0]
		if record {
			w = want[i][1]
		}
		if d := tensor.MaxAbsDiff(y.F, w.F); d != 0 {
			t.Errorf("input %d (record %v): output differs by %g from an unpooled model's", i, record, d)
		}
	}
	type out struct {
		i      int
		record bool
		y      *tensor.Tensor
	}
	var kept []out
	for round := 0; round < 3; round++ {
		for i, x := range xs {
			p, err := m.Forward(ctx, feed("input", x), &Options{Record: round == 1})
			if err != nil {
				t.Fatal(err)
			}
			y, _ := p.Output(0)
			check(i, round == 1, y)
			kept = append(kept, out{i, round == 1, y})
			p.Release()
		}
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, x := range xs {
				p, err := m.Forward(ctx, feed("input", x), &Options{Record: g%2 == 0})
				if err != nil {
					t.Error(err)
					return
				}
				y, _ := p.Output(0)
				check(i, g%2 == 0, y)
				p.Release()
			}
		}()
	}
	wg.Wait()
	// Outputs handed out earlier were not reused.
	for _, o := range kept {
		check(o.i, o.record, o.y)
	}

	// Allocation: a pass of the same shape after a first one.
	allocated := func() uint64 {
		var st runtime.MemStats
		runtime.ReadMemStats(&st)
		return st.TotalAlloc
	}
	// A collection empties the pool (sync.Pool); none runs while measuring.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	m2 := load(t, "resnet_mini_s0.onnx")
	best := ^uint64(0)
	var first uint64
	for try := 0; try < 3; try++ {
		a := allocated()
		if _, err := m2.Forward(ctx, feed("input", xs[1]), nil); err != nil {
			t.Fatal(err)
		}
		b := allocated()
		if _, err := m2.Forward(ctx, feed("input", xs[1]), nil); err != nil {
			t.Fatal(err)
		}
		if try == 0 {
			first = b - a
		}
		best = min(best, allocated()-b)
	}
	t.Logf("first pass %d bytes, then %d", first, best)
	if best > first/2 && !raceOn {
		t.Errorf("a second pass allocated %d bytes, the first %d: buffers not reused", best, first)
	}
}

// TestBuffersViews checks that memory a view may share is not reused: a
// Relu's output read by Reshape (a view, the graph's output) and by Neg
// must keep its values after later passes reuse the pool.
func TestBuffersViews(t *testing.T) {
	ctx := context.Background()
	shape := tensor.NewInt(2)
	shape.I[0], shape.I[1] = 2, 8
	g := &graph.Graph{
		Inputs:       []graph.ValueInfo{{Name: "x", DType: tensor.Float32}},
		Outputs:      []graph.ValueInfo{{Name: "y"}, {Name: "z"}},
		Initializers: map[string]*tensor.Tensor{"shape": shape},
		Opsets:       map[string]int{"": 13},
		Nodes: []*graph.Node{
			{Name: "relu", OpType: "Relu", Inputs: []string{"x"}, Outputs: []string{"r"}},
			{Name: "view", OpType: "Reshape", Inputs: []string{"r", "shape"}, Outputs: []string{"y"}},
			{Name: "neg", OpType: "Neg", Inputs: []string{"r"}, Outputs: []string{"n"}},
			{Name: "relu2", OpType: "Relu", Inputs: []string{"n"}, Outputs: []string{"z"}},
		},
	}
	m, err := Compile(g)
	if err != nil {
		t.Fatal(err)
	}
	var ys []*tensor.Tensor
	var want [][]float32
	for i := 0; i < 6; i++ {
		x := randn(uint64(10+i), 4, 4)
		p, err := m.Forward(ctx, feed("x", x), &Options{Record: i%2 == 1})
		if err != nil {
			t.Fatal(err)
		}
		y, _ := p.Output(0)
		w := make([]float32, len(x.F))
		for j, v := range x.F {
			w[j] = max(v, 0)
		}
		ys, want = append(ys, y), append(want, w)
		p.Release()
	}
	for i, y := range ys {
		if d := tensor.MaxAbsDiff(y.F, want[i]); d != 0 {
			t.Errorf("pass %d: its output changed by %g after later passes", i, d)
		}
	}
}

// TestReleasedPass checks that a released pass answers nothing.
func TestReleasedPass(t *testing.T) {
	ctx := context.Background()
	m := load(t, "cnn_s0.onnx")
	p, err := m.Forward(ctx, feed("input", randn(1, 2, 3, 32, 32)), &Options{Record: true, Taps: []string{"/conv2/Conv_output_0"}})
	if err != nil {
		t.Fatal(err)
	}
	y, _ := p.Output(0)
	p.Release()
	if _, err := p.Value("/conv2/Conv_output_0"); err != nil {
		t.Errorf("a tap after Release: %v", err)
	}
	if _, err := p.Value("/relu1/Relu_output_0"); err == nil || !strings.Contains(err.Error(), "released") {
		t.Errorf("an inner value after Release: error %v", err)
	}
	if _, err := p.Backward(ctx, map[string]*tensor.Tensor{m.OutputNames()[0]: y}, []string{"input"}, nil); err == nil || !strings.Contains(err.Error(), "released") {
		t.Errorf("Backward after Release: error %v", err)
	}
}

// TestBuffersGradients runs backward passes one after another and at once
// on one model, fused and not: every input gradient must equal a fresh
// model's, bit for bit, with the memory of dropped gradients reused.
func TestBuffersGradients(t *testing.T) {
	ctx := context.Background()
	m := load(t, "resnet_mini_s0.onnx")
	out := m.OutputNames()[0]
	xs := []*tensor.Tensor{randn(21, 1, 3, 224, 224), randn(22, 2, 3, 224, 224)}
	grad := func(m *Model, x *tensor.Tensor, fuse bool) *tensor.Tensor {
		p, err := m.Forward(ctx, feed("input", x), &Options{Record: true, Fuse: fuse})
		if err != nil {
			t.Error(err)
			return nil
		}
		y, _ := p.Output(0)
		seed := tensor.New(y.Shape...)
		for i := range seed.F {
			seed.F[i] = float32(i%7) - 3
		}
		g, err := p.Backward(ctx, map[string]*tensor.Tensor{out: seed}, []string{"input"}, nil)
		if err != nil {
			t.Error(err)
			return nil
		}
		p.Release()
		return g["input"]
	}
	want := map[[2]int]*tensor.Tensor{}
	for i, x := range xs {
		for f, fuse := range []bool{false, true} {
			want[[2]int{i, f}] = grad(load(t, "resnet_mini_s0.onnx"), x, fuse)
		}
	}
	check := func(i, f int, g *tensor.Tensor) {
		if g == nil {
			return
		}
		if d := tensor.MaxAbsDiff(g.F, want[[2]int{i, f}].F); d != 0 {
			t.Errorf("input %d (fuse %v): gradient differs by %g from a fresh model's", i, f == 1, d)
		}
	}
	var kept []*tensor.Tensor
	for round := 0; round < 3; round++ {
		for i, x := range xs {
			for f, fuse := range []bool{false, true} {
				g := grad(m, x, fuse)
				check(i, f, g)
				kept = append(kept, g)
			}
		}
	}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, x := range xs {
				check(i, w%2, grad(m, x, w%2 == 1))
			}
		}()
	}
	wg.Wait()
	n := 0
	for round := 0; round < 3; round++ {
		for i := range xs {
			for f := range 2 {
				check(i, f, kept[n])
				n++
			}
		}
	}
}
