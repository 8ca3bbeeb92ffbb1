package attr

import (
	"cmp"
	"context"
	"fmt"

	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// LRPRuleKind names a layer-wise relevance propagation rule.
type LRPRuleKind int

// The LRP rules, as Captum offers them.
const (
	// Epsilon divides by z + eps*sign(z) (z the layer's output).
	Epsilon LRPRuleKind = iota
	// Gamma favors positive contributions: weights w + gamma*max(w, 0).
	Gamma
	// Alpha1Beta0 keeps only positive contributions: weights max(w, 0).
	Alpha1Beta0
	// Identity passes relevance through unchanged.
	Identity
)

// LRPRule is the rule of one layer.
type LRPRule struct {
	Kind    LRPRuleKind
	Epsilon float64 // Epsilon rule's stabiliser; 0 means 1e-9
	Gamma   float64 // Gamma rule's factor; 0 means 0.25
	// ZeroBias sets the layer's bias to zero (Gamma and Alpha1Beta0).
	ZeroBias bool
}

// lrpLayerOps are the ops that carry a rule (Captum's Linear, Conv2d,
// pooling and BatchNorm2d modules); lrpPassOps pass relevance through as
// Captum does for ReLU, Tanh and Dropout.
var (
	lrpLayerOps = map[string]bool{"Gemm": true, "MatMul": true, "Conv": true, "MaxPool": true, "AveragePool": true, "GlobalAveragePool": true, "BatchNormalization": true}
	lrpPassOps  = map[string]bool{"Relu": true, "Tanh": true, "Dropout": true, "LeakyRelu": true, "Elu": true, "Sigmoid": true, "Identity": true}
)

// LRP is layer-wise relevance propagation (Bach et al., "On Pixel-Wise
// Explanations for Non-Linear Classifier Decisions by Layer-Wise Relevance
// Propagation", PLOS ONE 2015): the target output is redistributed layer by
// layer back to the inputs, each layer by its rule. By default every layer
// (Gemm, MatMul, Conv, pooling, BatchNormalization) gets the epsilon rule
// with eps 1e-9 and activations pass relevance through, as in Captum; other
// ops (Flatten, Concat, Mul, Add) keep their gradient. Relevance is
// conserved up to the epsilon terms and biases; the convergence delta is
// F(x) - sum(attributions). Cost: two forward rows and one backward row per
// example.
type LRP struct {
	Net *Net
	// Rules chooses the rule of a layer; nil, or nil returned, means the
	// epsilon rule. A composite in Zennit's sense is such a function, for
	// example one giving Gamma to every Conv and Epsilon to every Gemm.
	Rules func(n *graph.Node) *LRPRule
}

// Attribute computes relevances of inputs for a.Target.
func (l *LRP) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	n, err := l.Net.batch(inputs)
	if err != nil {
		return nil, err
	}
	res, err := l.relevance(ctx, inputs, o, l.Net.Inputs)
	if err != nil {
		return nil, err
	}
	if o.Progress != nil {
		o.Progress(n, n)
	}
	return res, nil
}

// relevance returns the relevance of the tensors named in wrt (inputs or
// layers) and, with o.Delta, the target output minus their sum per example.
func (l *LRP) relevance(ctx context.Context, inputs []*tensor.Tensor, o Options, wrt []string) (*Result, error) {
	n := inputs[0].Shape[0]
	if err := floatInputs(inputs, "LRP"); err != nil {
		return nil, err
	}
	feeds, err := l.Net.feeds(inputs, o.Additional, n, 1, false)
	if err != nil {
		return nil, err
	}
	// F(x) with the model's own weights.
	out, err := targetValues(ctx, l.Net, inputs, o, n)
	if err != nil {
		return nil, err
	}
	rules := map[*graph.Node]*LRPRule{}
	inject := map[string]*tensor.Tensor{}
	g := l.Net.Model.Graph()
	for _, node := range g.Nodes {
		if !lrpLayerOps[node.OpType] {
			continue
		}
		r := &LRPRule{Kind: Epsilon}
		if l.Rules != nil {
			if rr := l.Rules(node); rr != nil {
				r = rr
			}
		}
		if err := checkFloat("LRP rule on "+node.Name, "Epsilon", r.Epsilon, 0, MaxStdev); err != nil {
			return nil, err
		}
		if err := checkFloat("LRP rule on "+node.Name, "Gamma", r.Gamma, 0, MaxStdev); err != nil {
			return nil, err
		}
		rules[node] = r
		if r.Kind != Gamma && r.Kind != Alpha1Beta0 {
			continue
		}
		if len(node.Inputs) < 2 {
			continue
		}
		w, ok := g.Initializers[node.Inputs[1]]
		if !ok {
			return nil, fmt.Errorf("attr: LRP %v rule on %s: its weight %q is not a constant", r.Kind, node, node.Inputs[1])
		}
		mw := w.Clone()
		gamma := cmp.Or(float32(r.Gamma), 0.25)
		for i, v := range mw.F {
			pos := max(v, 0)
			if r.Kind == Gamma {
				mw.F[i] = v + gamma*pos
			} else {
				mw.F[i] = pos
			}
		}
		inject[node.Inputs[1]] = mw
		if r.ZeroBias && len(node.Inputs) > 2 && node.Inputs[2] != "" {
			if b, ok := g.Initializers[node.Inputs[2]]; ok {
				inject[node.Inputs[2]] = tensor.New(b.Shape...)
			}
		}
	}
	p, err := l.Net.forward(ctx, feeds, &engine.Options{Record: true, Inject: inject, Outputs: []string{l.Net.Output}})
	if err != nil {
		return nil, err
	}
	y, err := p.Value(l.Net.Output)
	if err != nil {
		return nil, err
	}
	seed, err := o.Target.seedOf(y)
	if err != nil {
		return nil, err
	}
	grads, err := p.Backward(ctx, map[string]*tensor.Tensor{l.Net.Output: seed}, wrt, lrpRules{rules})
	if err != nil {
		return nil, err
	}
	rel := make([]*tensor.Tensor, len(wrt))
	for i, name := range wrt {
		gr := grads[name]
		row := gr.Len() / n
		for r := 0; r < n; r++ {
			for e := r * row; e < (r+1)*row; e++ {
				gr.F[e] *= out[r]
			}
		}
		rel[i] = gr
	}
	res := &Result{Attributions: rel}
	if o.Delta {
		res.Delta = relevanceDelta(out, rel, n)
	}
	return res, nil
}

// lrpRules maps nodes to engine rules for one LRP backward pass.
type lrpRules struct {
	rules map[*graph.Node]*LRPRule
}

func (lr lrpRules) Rule(n *graph.Node) engine.Rule {
	if lrpPassOps[n.OpType] {
		return passThrough
	}
	r, ok := lr.rules[n]
	if !ok {
		return nil
	}
	if r.Kind == Identity {
		return passThrough
	}
	eps := cmp.Or(float32(r.Epsilon), 1e-9)
	return func(c *engine.RuleContext) ([]*tensor.Tensor, error) {
		gout, z := c.GradOut[0], c.Out[0]
		if gout == nil {
			return make([]*tensor.Tensor, len(c.In)), nil
		}
		s := tensor.New(gout.Shape...)
		for i, v := range gout.F {
			d := z.F[i]
			if d >= 0 {
				d += eps
			} else {
				d -= eps
			}
			s.F[i] = v / d
		}
		need := make([]bool, len(c.In))
		need[0] = c.Need[0]
		g, err := c.VJP(c.In, c.Out, []*tensor.Tensor{s}, need)
		if err != nil {
			return nil, err
		}
		if g[0] != nil {
			x := c.In[0]
			for i := range g[0].F {
				g[0].F[i] *= x.F[i]
			}
		}
		return g, nil
	}
}

// passThrough hands the incoming gradient to the first input unchanged.
func passThrough(c *engine.RuleContext) ([]*tensor.Tensor, error) {
	g := make([]*tensor.Tensor, len(c.In))
	if c.GradOut[0] != nil && tensor.SameShape(c.GradOut[0].Shape, c.In[0].Shape) {
		g[0] = c.GradOut[0]
	} else if c.GradOut[0] != nil {
		return nil, fmt.Errorf("relevance cannot pass through %s: output shape %v differs from input shape %v", c.Node, c.GradOut[0].Shape, c.In[0].Shape)
	}
	return g, nil
}

// LayerLRP is the relevance LRP (Bach et al., PLOS ONE 2015) assigns to a
// layer's output (or input), as Captum's LayerLRP. The convergence delta is F(x) - sum(relevance). Cost:
// as LRP's, two forward rows and one backward row per example.
type LayerLRP struct {
	Net   *Net
	Layer string
	// AttributeToLayerInput attributes to the layer's input instead of its
	// output.
	AttributeToLayerInput bool
	// Rules chooses each layer's rule, as LRP.Rules.
	Rules func(n *graph.Node) *LRPRule
}

// Attribute computes the layer's relevance.
func (l *LayerLRP) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	_, name, err := l.Net.layerBatch(inputs, l.Layer, l.AttributeToLayerInput)
	if err != nil {
		return nil, err
	}
	return (&LRP{Net: l.Net, Rules: l.Rules}).relevance(ctx, inputs, o, []string{name})
}
