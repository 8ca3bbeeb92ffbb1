package attr

import (
	"context"
	"fmt"

	"github.com/loupe-ml/loupe/tensor"
)

// WithLayerInput returns a copy of the net whose attributed input is a
// layer's value instead of the model input that produces it: for a text
// model, the output of the embedding lookup, so that any gradient method
// (IntegratedGradients, Saliency, NoiseTunnel, ...) scales embeddings
// rather than token ids. This is Captum's interpretable embedding
// (configure_interpretable_embedding_layer), done without changing the
// model: the layer's value is injected. Use Embed to turn token ids into
// the values the new net takes.
func (nt *Net) WithLayerInput(layer, replaces string) (*Net, error) {
	name, err := nt.resolve(layer, false)
	if err != nil {
		return nil, err
	}
	c := *nt
	c.Inputs = nil
	found := false
	for _, in := range nt.Inputs {
		if in == replaces {
			c.Inputs = append(c.Inputs, name)
			found = true
		} else {
			c.Inputs = append(c.Inputs, in)
		}
	}
	if !found {
		return nil, fmt.Errorf("attr: %q is not an attributed input of the net (%v)", replaces, nt.Inputs)
	}
	return &c, nil
}

// Embed returns the value of a layer (an embedding lookup's output) for a
// batch of the net's inputs: Captum's indices_to_embeddings.
func (nt *Net) Embed(ctx context.Context, layer string, inputs []*tensor.Tensor, o Options) (*tensor.Tensor, error) {
	_, _, v, err := nt.layerActivation(ctx, inputs, o, layer, false)
	if err != nil {
		return nil, err
	}
	return v, nil
}

// TokenReference makes reference (baseline) token sequences, Captum's
// TokenReferenceBase: every position holds the reference token, such as
// the padding token.
type TokenReference struct {
	ReferenceTokenIdx int64
}

// Generate returns a [1, seqLen] int64 sequence of the reference token,
// which broadcasts over a batch as a baseline.
func (t TokenReference) Generate(seqLen int) *tensor.Tensor {
	r := tensor.NewInt(1, seqLen)
	for i := range r.I {
		r.I[i] = t.ReferenceTokenIdx
	}
	return r
}

// SumTokens sums an attribution over its last dimension (the embedding
// dimension of [N, L, D] token attributions), giving one score per token.
func SumTokens(a *tensor.Tensor) (*tensor.Tensor, error) {
	if a == nil || a.DType != tensor.Float32 || a.Rank() < 2 {
		return nil, fmt.Errorf("attr: SumTokens needs a float tensor of rank 2 or more")
	}
	d := a.Shape[a.Rank()-1]
	out := tensor.New(a.Shape[:a.Rank()-1]...)
	for i := range out.F {
		var s float32
		for _, v := range a.F[i*d : (i+1)*d] {
			s += v
		}
		out.F[i] = s
	}
	return out, nil
}
