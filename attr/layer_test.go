package attr

import (
	"context"
	"math"
	"testing"

	"github.com/loupe-ml/loupe/tensor"
)

// Layer conductance is complete across the layer: summed over the layer it
// is F(x) - F(b), as the input integrated gradients are.
func TestLayerConductanceCompleteness(t *testing.T) {
	ctx := context.Background()
	nt := net(t, "mlp_s0.onnx")
	x := []*tensor.Tensor{randn(1, 1, 3, 6)}
	o := Options{Target: Classes(0, 2, 3), Baselines: []*tensor.Tensor{randn(2, 0.2, 3, 6)}, Delta: true}
	lc, err := (&LayerConductance{Net: nt, Layer: "sigmoid", NSteps: 300}).Attribute(ctx, x, o)
	if err != nil {
		t.Fatal(err)
	}
	ig, err := (&IntegratedGradients{Net: nt, NSteps: 300}).Attribute(ctx, x, o)
	if err != nil {
		t.Fatal(err)
	}
	for e := 0; e < 3; e++ {
		a, b := rowSum(lc.Attributions, e, 3), rowSum(ig.Attributions, e, 3)
		if math.Abs(float64(a-b)) > 2e-3*math.Max(1, math.Abs(float64(b))) || math.Abs(float64(lc.Delta.F[e])) > 2e-3 {
			t.Errorf("example %d: layer conductance sums to %g (delta %g), integrated gradients to %g", e, a, lc.Delta.F[e], b)
		}
	}
}

// Neuron conductance summed over the input features is the neuron's layer
// conductance.
func TestNeuronConductanceSumsToLayerConductance(t *testing.T) {
	ctx := context.Background()
	nt := net(t, "mlp_s0.onnx")
	x := []*tensor.Tensor{randn(3, 1, 2, 6)}
	o := Options{Target: Class(1)}
	lc, err := (&LayerConductance{Net: nt, Layer: "/fc2/Gemm_output_0", NSteps: 400, Method: RiemannMiddle}).Attribute(ctx, x, o)
	if err != nil {
		t.Fatal(err)
	}
	for k := 0; k < 8; k++ {
		nc, err := (&NeuronConductance{Net: nt, Neuron: Neuron{Layer: "/fc2/Gemm_output_0", Index: []int{k}}, NSteps: 400, Method: RiemannMiddle}).Attribute(ctx, x, o)
		if err != nil {
			t.Fatal(err)
		}
		for e := 0; e < 2; e++ {
			s := rowSum(nc.Attributions, e, 2)
			want := lc.Attributions[0].F[e*8+k]
			if math.Abs(float64(s-want)) > 2e-3*math.Max(0.05, math.Abs(float64(want))) {
				t.Errorf("neuron %d example %d: neuron conductance sums to %g, layer conductance %g", k, e, s, want)
			}
		}
	}
}

// Integrated gradients on the embedding through WithLayerInput equal
// LayerIntegratedGradients on that layer.
func TestInterpretableEmbedding(t *testing.T) {
	ctx := context.Background()
	nt := net(t, "text_s0.onnx")
	tok := tensor.NewInt(2, 7)
	for i := range tok.I {
		tok.I[i] = int64(3*i+1) % 50
	}
	ref := TokenReference{ReferenceTokenIdx: 0}.Generate(7)
	o := Options{Target: Class(1), Baselines: []*tensor.Tensor{ref}}
	lig, err := (&LayerIntegratedGradients{Net: nt, Layer: "emb", NSteps: 20}).Attribute(ctx, []*tensor.Tensor{tok}, o)
	if err != nil {
		t.Fatal(err)
	}
	en, err := nt.WithLayerInput("emb", "tokens")
	if err != nil {
		t.Fatal(err)
	}
	ex, err := nt.Embed(ctx, "emb", []*tensor.Tensor{tok}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	eb, err := nt.Embed(ctx, "emb", []*tensor.Tensor{repeat(ref, 2, false)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ig, err := (&IntegratedGradients{Net: en, NSteps: 20}).Attribute(ctx, []*tensor.Tensor{ex}, Options{Target: Class(1), Baselines: []*tensor.Tensor{eb}})
	if err != nil {
		t.Fatal(err)
	}
	if d := tensor.MaxAbsDiff(ig.Attributions[0].F, lig.Attributions[0].F); d > 1e-6 {
		t.Errorf("IG on embeddings and LayerIntegratedGradients differ by %g", d)
	}
	sums, err := SumTokens(ig.Attributions[0])
	if err != nil || !tensor.SameShape(sums.Shape, []int{2, 7}) {
		t.Fatalf("SumTokens: %v %v", sums, err)
	}
}

// A neuron selected by weights is the weighted sum of the neurons: with a
// one-hot weight it is that neuron, and gradients are linear in the weights.
func TestNeuronWeights(t *testing.T) {
	ctx := context.Background()
	nt := net(t, "cnn_s0.onnx")
	x := []*tensor.Tensor{randn(4, 1, 2, 3, 32, 32)}
	const layer = "/conv2/Conv_output_0"
	one := tensor.New(16, 16, 16)
	one.F[(3*16+4)*16+5] = 1
	a, err := (&NeuronGradient{Net: nt, Neuron: Neuron{Layer: layer, Index: []int{3, 4, 5}}}).Attribute(ctx, x, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := (&NeuronGradient{Net: nt, Neuron: Neuron{Layer: layer, Weights: one}}).Attribute(ctx, x, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d := tensor.MaxAbsDiff(a.Attributions[0].F, b.Attributions[0].F); d != 0 {
		t.Errorf("one-hot weights differ from the index by %g", d)
	}
	two := tensor.New(16, 16, 16)
	two.F[(3*16+4)*16+5] = 0.5
	two.F[(7*16+2)*16+9] = 2
	c, _ := (&NeuronGradient{Net: nt, Neuron: Neuron{Layer: layer, Weights: two}}).Attribute(ctx, x, Options{})
	d, _ := (&NeuronGradient{Net: nt, Neuron: Neuron{Layer: layer, Index: []int{7, 2, 9}}}).Attribute(ctx, x, Options{})
	for i := range c.Attributions[0].F {
		want := 0.5*a.Attributions[0].F[i] + 2*d.Attributions[0].F[i]
		if math.Abs(float64(c.Attributions[0].F[i]-want)) > 1e-5 {
			t.Fatalf("element %d: %g, want %g", i, c.Attributions[0].F[i], want)
		}
	}
}
