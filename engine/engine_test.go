package engine

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/internal/testmodels"
	"github.com/loupe-ml/loupe/tensor"
)

var modelDir = testmodels.Dir()

func load(t testing.TB, name string) *Model {
	t.Helper()
	m, err := Load(filepath.Join(modelDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func randn(seed uint64, shape ...int) *tensor.Tensor {
	rng := rand.New(rand.NewPCG(seed, 3))
	x := tensor.New(shape...)
	for i := range x.F {
		x.F[i] = float32(rng.NormFloat64())
	}
	return x
}

func feed(name string, x *tensor.Tensor) map[string]*tensor.Tensor {
	return map[string]*tensor.Tensor{name: x}
}

func TestLoadAllModels(t *testing.T) {
	for _, name := range []string{"toy.onnx", "mlp_s0.onnx", "mlp_softmax_s0.onnx", "cnn_s0.onnx", "resnet_mini_s0.onnx", "text_s0.onnx", "multimodal_s0.onnx", "masked_s0.onnx", "linear_s0.onnx"} {
		m := load(t, name)
		if len(m.OutputNames()) != 1 || m.OutputNames()[0] != "output" {
			t.Errorf("%s: outputs %v", name, m.OutputNames())
		}
	}
}

// TestToyClosedForm checks the forward pass and the input gradient of
// Captum's README toy model against values computed by hand.
func TestToyClosedForm(t *testing.T) {
	m := load(t, "toy.onnx")
	x, _ := tensor.FromFloat32([]float32{1, 2, 3}, 1, 3)
	p, err := m.Forward(context.Background(), feed("input", x), &Options{Record: true})
	if err != nil {
		t.Fatal(err)
	}
	// lin1: W = [[-4,-3,-2],[-1,0,1],[2,3,4]], b = 0 -> h = [-16, 2, 20], relu -> [0, 2, 20]
	// lin2: W = [[-3,-2,-1],[0,1,2]], b = 1 -> y = [-4-20+1, 2+40+1] = [-23, 43]
	y, _ := p.Output(0)
	if d := tensor.MaxAbsDiff(y.F, []float32{-23, 43}); d != 0 {
		t.Fatalf("toy(1,2,3) = %v, want [-23 43]", y)
	}
	seed, _ := tensor.FromFloat32([]float32{1, 0}, 1, 2)
	g, err := p.Backward(context.Background(), feed("output", seed), []string{"input"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// d y0/dx = W2[0] * relu'(h) * W1 = [-3*0, -2*1, -1*1] . W1 = -2*[-1,0,1] - 1*[2,3,4] = [0,-3,-6]
	if d := tensor.MaxAbsDiff(g["input"].F, []float32{0, -3, -6}); d != 0 {
		t.Fatalf("gradient %v, want [0 -3 -6]", g["input"])
	}
	// A guided-backprop style rule on Relu changes only what it should:
	// with the gradient clamped to zero, nothing flows back.
	zero := OpRules{"Relu": func(c *RuleContext) ([]*tensor.Tensor, error) {
		return []*tensor.Tensor{tensor.New(c.In[0].Shape...)}, nil
	}}
	g, err = p.Backward(context.Background(), feed("output", seed), []string{"input"}, zero)
	if err != nil {
		t.Fatal(err)
	}
	if d := tensor.MaxAbsDiff(g["input"].F, []float32{0, 0, 0}); d != 0 {
		t.Fatalf("gradient with a zero Relu rule %v, want zeros", g["input"])
	}
}

// directional checks <grad f(x), v> against a central difference of f along
// v, for a few random directions v, where f = <seed, output>. The step must
// be small enough that no ReLU or max-pool choice flips along it.
func directional(t *testing.T, m *Model, inputs map[string]*tensor.Tensor, wrt string, h, tol float64) {
	t.Helper()
	ctx := context.Background()
	p, err := m.Forward(ctx, inputs, &Options{Record: true})
	if err != nil {
		t.Fatal(err)
	}
	y, _ := p.Output(0)
	seed := randn(99, y.Shape...)
	g, err := p.Backward(ctx, feed(m.OutputNames()[0], seed), []string{wrt}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := func(x *tensor.Tensor) float64 {
		in := map[string]*tensor.Tensor{}
		for k, v := range inputs {
			in[k] = v
		}
		in[wrt] = x
		p, err := m.Forward(ctx, in, nil)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := p.Output(0)
		s := 0.0
		for i, v := range out.F {
			s += float64(v) * float64(seed.F[i])
		}
		return s
	}
	x := inputs[wrt]
	for k := uint64(0); k < 3; k++ {
		v := randn(k+1, x.Shape...)
		if len(v.F) > 4096 {
			// On big inputs a dense direction crosses ReLU and max-pool
			// kinks at any usable step; perturb 16 elements only.
			keep := map[int]bool{}
			for i := 0; i < 16; i++ {
				keep[(i*7919+int(k)*104729)%len(v.F)] = true
			}
			for i := range v.F {
				if !keep[i] {
					v.F[i] = 0
				}
			}
		}
		up, down := x.Clone(), x.Clone()
		for i := range up.F {
			up.F[i] += float32(h) * v.F[i]
			down.F[i] -= float32(h) * v.F[i]
		}
		fd := (f(up) - f(down)) / (2 * h)
		an := 0.0
		for i := range v.F {
			an += float64(v.F[i]) * float64(g[wrt].F[i])
		}
		if math.Abs(fd-an) > tol*math.Max(1, math.Abs(fd)) {
			t.Errorf("direction %d: finite difference %g, gradient %g", k, fd, an)
		}
	}
}

func TestGradientsFiniteDifference(t *testing.T) {
	t.Run("mlp_softmax", func(t *testing.T) {
		directional(t, load(t, "mlp_softmax_s0.onnx"), feed("input", randn(1, 3, 6)), "input", 1e-2, 2e-3)
	})
	t.Run("cnn", func(t *testing.T) {
		directional(t, load(t, "cnn_s0.onnx"), feed("input", randn(2, 2, 3, 32, 32)), "input", 1e-4, 1e-2)
	})
	t.Run("multimodal", func(t *testing.T) {
		m := load(t, "multimodal_s0.onnx")
		in := map[string]*tensor.Tensor{"image": randn(3, 2, 1, 8, 8), "tabular": randn(4, 2, 5)}
		directional(t, m, in, "image", 1e-4, 1e-2)
		directional(t, m, in, "tabular", 1e-4, 1e-2)
	})
	t.Run("resnet_mini", func(t *testing.T) {
		if testing.Short() {
			t.Skip("short")
		}
		directional(t, load(t, "resnet_mini_s0.onnx"), feed("input", randn(5, 1, 3, 224, 224)), "input", 1e-3, 1e-2)
	})
}

func TestTapsAndInjection(t *testing.T) {
	m := load(t, "cnn_s0.onnx")
	ctx := context.Background()
	x := randn(7, 2, 3, 32, 32)
	const relu2 = "/relu2/Relu_output_0"
	p, err := m.Forward(ctx, feed("input", x), &Options{Taps: []string{relu2}})
	if err != nil {
		t.Fatal(err)
	}
	act, err := p.Value(relu2)
	if err != nil {
		t.Fatal(err)
	}
	if !tensor.SameShape(act.Shape, []int{2, 16, 16, 16}) {
		t.Errorf("relu2 shape %v", act.Shape)
	}
	if _, err := p.Value("/conv1/Conv_output_0"); err == nil {
		t.Error("an intermediate that was neither tapped nor recorded: no error")
	}
	y, _ := p.Output(0)

	// Injecting the tapped value reproduces the output, without the input.
	q, err := m.Forward(ctx, nil, &Options{Inject: map[string]*tensor.Tensor{relu2: act}, Record: true})
	if err != nil {
		t.Fatal(err)
	}
	y2, _ := q.Output(0)
	if d := tensor.MaxAbsDiff(y.F, y2.F); d != 0 {
		t.Errorf("output after injection differs by %g", d)
	}
	// Gradients flow to the injected tensor, and match those of a tensor
	// that was computed rather than injected.
	seed := randn(8, y.Shape...)
	gi, err := q.Backward(ctx, feed("output", seed), []string{relu2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := m.Forward(ctx, feed("input", x), &Options{Record: true})
	gr, err := r.Backward(ctx, feed("output", seed), []string{relu2, "input"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := tensor.MaxAbsDiff(gi[relu2].F, gr[relu2].F); d > 1e-6 {
		t.Errorf("gradient at the injected tensor differs by %g", d)
	}
	// Injection really replaces: zero activations give the bias alone.
	z, _ := m.Forward(ctx, nil, &Options{Inject: map[string]*tensor.Tensor{relu2: tensor.New(2, 16, 16, 16)}})
	yz, _ := z.Output(0)
	if yz.F[0] != yz.F[10] {
		t.Errorf("zero activations give different outputs for two examples: %v", yz)
	}
}

func TestErrors(t *testing.T) {
	m := load(t, "multimodal_s0.onnx")
	ctx := context.Background()
	tests := []struct {
		name   string
		inputs map[string]*tensor.Tensor
		want   string
	}{
		{"missing", map[string]*tensor.Tensor{"image": tensor.New(1, 1, 8, 8)}, `missing input "tabular"`},
		{"unknown", map[string]*tensor.Tensor{"image": tensor.New(1, 1, 8, 8), "tabular": tensor.New(1, 5), "x": tensor.New(1)}, `no input named "x"`},
		{"shape", map[string]*tensor.Tensor{"image": tensor.New(1, 1, 9, 8), "tabular": tensor.New(1, 5)}, `input "image" has shape [1 1 9 8]`},
		{"rank", map[string]*tensor.Tensor{"image": tensor.New(1, 8, 8), "tabular": tensor.New(1, 5)}, `input "image" has shape [1 8 8]`},
		{"batch", map[string]*tensor.Tensor{"image": tensor.New(2, 1, 8, 8), "tabular": tensor.New(3, 5)}, `batch=3`},
		{"dtype", map[string]*tensor.Tensor{"image": tensor.New(1, 1, 8, 8), "tabular": tensor.NewInt(1, 5)}, `input "tabular" is int64`},
		{"data", map[string]*tensor.Tensor{"image": tensor.New(1, 1, 8, 8), "tabular": {DType: tensor.Float32, Shape: []int{1, 5}, F: make([]float32, 2)}}, `holds 2 values`},
	}
	for _, tc := range tests {
		_, err := m.Forward(ctx, tc.inputs, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	if _, err := m.Forward(ctx, map[string]*tensor.Tensor{"image": tensor.New(1, 1, 8, 8), "tabular": tensor.New(1, 5)}, &Options{Taps: []string{"nope"}}); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown tap: error %v", err)
	}
	p, _ := m.Forward(ctx, map[string]*tensor.Tensor{"image": tensor.New(1, 1, 8, 8), "tabular": tensor.New(1, 5)}, nil)
	if _, err := p.Backward(ctx, nil, []string{"image"}, nil); err == nil || !strings.Contains(err.Error(), "Record") {
		t.Errorf("backward without record: error %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := m.Forward(cctx, map[string]*tensor.Tensor{"image": tensor.New(1, 1, 8, 8), "tabular": tensor.New(1, 5)}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: error %v", err)
	}
}

func TestUnsupportedOpsReportedAtLoad(t *testing.T) {
	g := &graph.Graph{
		Inputs:       []graph.ValueInfo{{Name: "x", DType: tensor.Float32}},
		Outputs:      []graph.ValueInfo{{Name: "z"}},
		Initializers: map[string]*tensor.Tensor{},
		Opsets:       map[string]int{"": 13},
		Nodes: []*graph.Node{
			{Name: "first_weird", OpType: "FrobnicateV2", Inputs: []string{"x"}, Outputs: []string{"y"}},
			{Name: "relu", OpType: "Relu", Inputs: []string{"y"}, Outputs: []string{"y2"}},
			{Name: "second_weird", OpType: "FrobnicateV2", Inputs: []string{"y2"}, Outputs: []string{"z"}},
		},
	}
	_, err := Compile(g)
	var ue *UnsupportedError
	if !errors.As(err, &ue) || len(ue.Nodes) != 2 {
		t.Fatalf("error %v, want an UnsupportedError for two nodes", err)
	}
	for _, want := range []string{"FrobnicateV2", "first_weird", "second_weird"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	g.Nodes[0].OpType, g.Nodes[2].OpType = "Relu", "Relu"
	g.Nodes[1].Inputs = []string{"undefined_tensor"}
	if _, err := Compile(g); err == nil || !strings.Contains(err.Error(), "undefined_tensor") {
		t.Errorf("dangling input: error %v", err)
	}
}

func TestConcurrentForward(t *testing.T) {
	m := load(t, "cnn_s0.onnx")
	ctx := context.Background()
	x := randn(11, 3, 3, 32, 32)
	// A recorded pass runs the graph node by node (no fusions), as the
	// concurrent ones below do: they must agree to the bit.
	p, err := m.Forward(ctx, feed("input", x), &Options{Record: true})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := p.Output(0)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := m.Forward(ctx, feed("input", x), &Options{Record: true})
			if err != nil {
				errs <- err
				return
			}
			y, _ := p.Output(0)
			if d := tensor.MaxAbsDiff(y.F, want.F); d != 0 {
				errs <- errors.New("concurrent forward gave a different output")
			}
			if _, err := p.Backward(ctx, feed("output", y), []string{"input"}, nil); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestLayers(t *testing.T) {
	tests := []struct {
		model, layer string
		input        bool
		want         string
	}{
		{"resnet_mini_s0.onnx", "layer4", false, "/layer4/layer4.1/relu2/Relu_output_0"},
		{"resnet_mini_s0.onnx", "layer3", false, "/layer3/layer3.1/relu2/Relu_output_0"},
		{"resnet_mini_s0.onnx", "layer4.1.conv2", false, "/layer4/layer4.1/conv2/Conv_output_0"},
		{"cnn_s0.onnx", "conv2", false, "/conv2/Conv_output_0"},
		{"cnn_s0.onnx", "fc", true, "/Flatten_output_0"},
		{"cnn_s0.onnx", "fc", false, "output"},
		{"mlp_s0.onnx", "fc2", true, "/sigmoid/Sigmoid_output_0"},
		{"text_s0.onnx", "emb", false, "/emb/Gather_output_0"},
		{"cnn_s0.onnx", "/relu1/Relu_output_0", false, "/relu1/Relu_output_0"},
	}
	for _, tc := range tests {
		got, err := load(t, tc.model).Resolve(tc.layer, tc.input)
		if err != nil || got != tc.want {
			t.Errorf("%s %s (input %v) = %q, %v; want %q", tc.model, tc.layer, tc.input, got, err, tc.want)
		}
	}
	if _, err := load(t, "resnet_mini_s0.onnx").Resolve("", false); err == nil || !strings.Contains(err.Error(), "no layer named") {
		t.Errorf("empty layer: error %v", err)
	}
	if _, err := load(t, "resnet_mini_s0.onnx").Resolve("layer9", false); err == nil || !strings.Contains(err.Error(), "layer4") {
		t.Errorf("unknown layer: error %v should suggest modules", err)
	}
	m := load(t, "resnet_mini_s0.onnx")
	if c, err := m.LastConv(); err != nil || c.Output != "/layer4/layer4.1/conv2/Conv_output_0" {
		t.Errorf("LastConv = %+v, %v", c, err)
	}
	found := false
	for _, l := range m.Layers() {
		if l.Module == "layer4.1.conv2" {
			found = true
			if !tensor.SameShape(l.Shape, []int{1, 64, 7, 7}) || l.OpType != "Conv" {
				t.Errorf("layer4.1.conv2: %+v", l)
			}
		}
	}
	if !found {
		t.Error("Layers lists no layer4.1.conv2")
	}
	if _, err := load(t, "mlp_s0.onnx").LastConv(); err == nil || !strings.Contains(err.Error(), "Gemm") {
		t.Errorf("LastConv on an MLP: error %v", err)
	}
}

func TestModulePath(t *testing.T) {
	for in, want := range map[string]string{
		"/layer4/layer4.1/conv2/Conv": "layer4.1.conv2",
		"/conv1/Conv":                 "conv1",
		"/Flatten":                    "",
		"Conv_12":                     "",
		"/features/features.3/Relu":   "features.3",
		"/layer2/layer2.0/downsample/downsample.0/Conv":               "layer2.0.downsample.0",
		"/layer2/layer2.0/downsample/downsample.1/BatchNormalization": "layer2.0.downsample.1",
	} {
		if got := ModulePath(in); got != want {
			t.Errorf("ModulePath(%q) = %q, want %q", in, got, want)
		}
	}
}

// A shape fed at run time that asks for an absurd tensor gives an error
// naming the node, not a crash.
func TestHugeShapeIsAnError(t *testing.T) {
	g := &graph.Graph{
		Inputs:       []graph.ValueInfo{{Name: "shape", DType: tensor.Int64}},
		Outputs:      []graph.ValueInfo{{Name: "z"}},
		Initializers: map[string]*tensor.Tensor{},
		Opsets:       map[string]int{"": 13},
		Nodes: []*graph.Node{
			{Name: "fill", OpType: "ConstantOfShape", Inputs: []string{"shape"}, Outputs: []string{"z"}},
		},
	}
	m, err := Compile(g)
	if err != nil {
		t.Fatal(err)
	}
	for _, dims := range [][]int64{{1 << 40, 1 << 40}, {-3, 2}} {
		shape := tensor.NewInt(len(dims))
		copy(shape.I, dims)
		_, err := m.Forward(context.Background(), map[string]*tensor.Tensor{"shape": shape}, nil)
		t.Log(err)
		if err == nil || !strings.Contains(err.Error(), "fill") {
			t.Errorf("shape %v: error %v, want one naming the node", dims, err)
		}
	}
}

// TestLayersHugeDeclaredInput: a model declaring a 100000x100000 input
// panicked in the dry run behind Layers; now its layers come without shapes.
func TestLayersHugeDeclaredInput(t *testing.T) {
	for _, dims := range [][]graph.Dim{{{Value: 100000}, {Value: 100000}}, {{Value: 1 << 40}, {Value: 1 << 40}, {Value: 16}}} {
		g := &graph.Graph{
			Inputs:       []graph.ValueInfo{{Name: "x", DType: tensor.Float32, Shape: dims}},
			Outputs:      []graph.ValueInfo{{Name: "y"}},
			Initializers: map[string]*tensor.Tensor{},
			Opsets:       map[string]int{"": 13},
			Nodes:        []*graph.Node{{Name: "relu", OpType: "Relu", Inputs: []string{"x"}, Outputs: []string{"y"}}},
		}
		m, err := Compile(g)
		if err != nil {
			t.Fatal(err)
		}
		ls := m.Layers()
		if len(ls) != 1 || ls[0].Shape != nil {
			t.Errorf("%v: layers %+v, want one without a shape", dims, ls)
		}
	}
}
