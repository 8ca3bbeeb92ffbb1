package llm

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/tensor"
)

// Options are the arguments of an attribution besides the prompt, under
// Captum's names.
type Options struct {
	// Target is the continuation explained, as text: it is tokenized
	// with the special tokens, and the ids of SkipTokens are removed.
	// TargetIDs gives it as token ids instead. With neither, the model's
	// greedy continuation of the prompt (GenArgs) is explained.
	Target     string
	TargetIDs  []int64
	SkipTokens []string
	GenArgs    GenArgs
	// NumTrials averages the attributions of that many runs (0 means 1);
	// a stochastic method gets the seeds Seed, Seed+1, ...
	NumTrials int
	// Progress, if set, is called as perturbed prompts are scored (of the
	// first trial) or, for gradient methods, as continuation tokens are
	// done.
	Progress attr.Progress
}

// Result is an LLM attribution (Captum's LLMAttributionResult).
type Result struct {
	// SeqAttr [F] attributes the log-probability (or probability) of the
	// whole continuation to each feature of the prompt.
	SeqAttr *tensor.Tensor
	// TokenAttr [T, F] attributes each continuation token's; nil for Lime
	// and KernelShap, which Captum runs on the sequence only.
	TokenAttr *tensor.Tensor
	// InputTokens names the features (template values or prompt tokens);
	// OutputTokens the continuation's tokens; TargetIDs their ids.
	InputTokens  []string
	OutputTokens []string
	TargetIDs    []int64
}

// targetIDs resolves the continuation of an attribution.
func targetIDs(ctx context.Context, lm *Model, tok Tokenizer, prompt []int64, o Options) ([]int64, error) {
	switch {
	case o.TargetIDs != nil && o.Target != "":
		return nil, fmt.Errorf("llm: give the target as text or as ids, not both")
	case o.TargetIDs != nil:
		if len(o.TargetIDs) == 0 {
			return nil, fmt.Errorf("llm: the target has no tokens")
		}
		if err := lm.checkIDs(o.TargetIDs); err != nil {
			return nil, fmt.Errorf("target: %w", err)
		}
		return slices.Clone(o.TargetIDs), nil
	case o.Target != "":
		ids, err := tok.Encode(o.Target)
		if err != nil {
			return nil, fmt.Errorf("llm: tokenizing the target %q: %w", o.Target, err)
		}
		var skip []int64
		for _, s := range o.SkipTokens {
			id, ok := tok.TokenToID(s)
			if !ok {
				return nil, fmt.Errorf("llm: skip token %q is not in the vocabulary", s)
			}
			skip = append(skip, id)
		}
		var out []int64
		for _, id := range ids {
			if !slices.Contains(skip, id) {
				out = append(out, id)
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("llm: the target %q has no tokens left after removing %v", o.Target, o.SkipTokens)
		}
		if err := lm.checkIDs(out); err != nil {
			return nil, fmt.Errorf("target: %w", err)
		}
		return out, nil
	}
	return lm.Generate(ctx, prompt, o.GenArgs)
}

// tokensOf returns the tokens of ids (convert_ids_to_tokens).
func tokensOf(tok Tokenizer, ids []int64) ([]string, error) {
	out := make([]string, len(ids))
	for i, id := range ids {
		s, ok := tok.IDToToken(id)
		if !ok {
			return nil, fmt.Errorf("llm: id %d is not in the tokenizer's vocabulary", id)
		}
		out[i] = s
	}
	return out, nil
}

// LLMAttribution explains a language model's continuation of a prompt with
// a perturbation method (Captum's LLMAttribution): the features of the
// prompt (InterpretableInput) are switched on and off by the method, each
// perturbed prompt is scored by teacher forcing (the log-probability of
// each continuation token given the prompt and the tokens before it), and
// the method attributes the total and, for FeatureAblation,
// ShapleyValueSampling and ShapleyValues, each token's log-probability to
// the features (Miglani et al., "Using Captum to Explain Generative Language
// Models", NLP-OSS 2023). Cost: the method's forward rows (FeatureAblation: 1 + F;
// ShapleyValueSampling: 1 + NSamples*F; ShapleyValues: 2^F; Lime and
// KernelShap: NSamples),
// each T model runs for a continuation of T tokens (prompts of the same
// length run together; repeated prompts run once).
type LLMAttribution struct {
	// Method is an *attr.FeatureAblation, *attr.ShapleyValueSampling,
	// *attr.ShapleyValues, *attr.Lime or *attr.KernelShap with its
	// parameters; its Model and FeatureMask are ignored (a copy is run on
	// the interpretable features).
	Method    attr.Method
	Model     *Model
	Tokenizer Tokenizer
	// AttrTarget is "log_prob" (the default) or "prob".
	AttrTarget string
}

// perturbation returns a copy of the method that runs on model, whether
// it attributes per token, and a function that sets its seed.
func perturbation(m attr.Method, model attr.Model) (attr.Method, bool, func(uint64), error) {
	switch t := m.(type) {
	case *attr.FeatureAblation:
		c := *t
		c.Model, c.FeatureMask = model, nil
		return &c, true, func(uint64) {}, nil
	case *attr.ShapleyValueSampling:
		c := *t
		c.Model, c.FeatureMask = model, nil
		base := t.Seed
		return &c, true, func(s uint64) { c.Seed = base + s }, nil
	case *attr.ShapleyValues:
		c := *t
		c.Model, c.FeatureMask = model, nil
		return &c, true, func(uint64) {}, nil
	case *attr.Lime:
		c := *t
		c.Model, c.FeatureMask = model, nil
		base := t.Seed
		return &c, false, func(s uint64) { c.Seed = base + s }, nil
	case *attr.KernelShap:
		c := *t
		c.Model, c.FeatureMask = model, nil
		base := t.Seed
		return &c, false, func(s uint64) { c.Seed = base + s }, nil
	case nil:
		return nil, false, nil, fmt.Errorf("llm: LLMAttribution has no Method")
	}
	return nil, false, nil, fmt.Errorf("llm: LLMAttribution does not support %T (use FeatureAblation, ShapleyValueSampling, ShapleyValues, Lime or KernelShap)", m)
}

// Attribute attributes the continuation (o.Target, o.TargetIDs, or the
// greedy generation) to the features of inp.
func (a *LLMAttribution) Attribute(ctx context.Context, inp InterpretableInput, o Options) (*Result, error) {
	if a.Model == nil || a.Tokenizer == nil || inp == nil {
		return nil, fmt.Errorf("llm: LLMAttribution needs a Model, a Tokenizer and an input")
	}
	useProb := false
	switch a.AttrTarget {
	case "", "log_prob":
	case "prob":
		useProb = true
	default:
		return nil, fmt.Errorf("llm: AttrTarget %q: it must be log_prob or prob", a.AttrTarget)
	}
	nf, err := inp.NumFeatures(a.Tokenizer)
	if err != nil {
		return nil, err
	}
	if nf == 0 {
		return nil, fmt.Errorf("llm: the input has no features")
	}
	prompt, err := inp.Tokens(a.Tokenizer, nil)
	if err != nil {
		return nil, err
	}
	target, err := targetIDs(ctx, a.Model, a.Tokenizer, prompt, o)
	if err != nil {
		return nil, err
	}
	nt := len(target)
	_, isToken := inp.(*TextTokenInput)

	// The forward function on the interpretable features, with a cache of
	// the scores of each on/off pattern.
	var mu sync.Mutex
	cache := map[string][]float32{}
	forward := attr.Func(func(ctx context.Context, in []*tensor.Tensor) (*tensor.Tensor, error) {
		x := in[0]
		if x.Rank() != 2 || x.Shape[1] != nf {
			return nil, fmt.Errorf("llm: interpretable batch of shape %v, want [K, %d]", x.Shape, nf)
		}
		k := x.Shape[0]
		out := tensor.New(k, 1+nt)
		keys := make([]string, k)
		var todo []int
		var seqs [][]int64
		mu.Lock()
		for r := range k {
			on := make([]bool, nf)
			key := make([]byte, nf)
			for i, v := range x.F[r*nf : (r+1)*nf] {
				// Captum: a template value is absent when 0, a token when
				// not 1.
				on[i] = v != 0
				if isToken {
					on[i] = v == 1
				}
				if on[i] {
					key[i] = 1
				}
			}
			keys[r] = string(key)
			if row, ok := cache[keys[r]]; ok {
				copy(out.F[r*(1+nt):], row)
				continue
			}
			p, err := inp.Tokens(a.Tokenizer, on)
			if err != nil {
				mu.Unlock()
				return nil, err
			}
			todo = append(todo, r)
			for j := range nt {
				seqs = append(seqs, append(slices.Clip(p), target[:j]...))
			}
		}
		mu.Unlock()
		if len(todo) == 0 {
			return out, nil
		}
		lp, err := a.Model.LogProbs(ctx, seqs)
		if err != nil {
			return nil, err
		}
		v := a.Model.VocabSize
		mu.Lock()
		defer mu.Unlock()
		for q, r := range todo {
			row := out.F[r*(1+nt) : (r+1)*(1+nt)]
			var total float32
			for j := range nt {
				l := lp.F[(q*nt+j)*v+int(target[j])]
				row[1+j] = l
				total += l
			}
			row[0] = total
			if useProb {
				for j := range row {
					row[j] = float32(math.Exp(float64(row[j])))
				}
			}
			cache[keys[r]] = slices.Clone(row)
		}
		return out, nil
	})
	meth, perToken, setSeed, err := perturbation(a.Method, forward)
	if err != nil {
		return nil, err
	}
	rows := 1
	if perToken {
		rows = 1 + nt
	}
	trials := max(o.NumTrials, 1)
	sum := make([][]float64, rows)
	for j := range sum {
		sum[j] = make([]float64, nf)
	}
	ones := tensor.New(1, nf)
	for i := range ones.F {
		ones.F[i] = 1
	}
	for t := range trials {
		setSeed(uint64(t))
		for j := range rows {
			opt := attr.Options{Target: attr.Class(j)}
			if t == 0 && j == 0 {
				// The first run scores every prompt; the others read
				// the cache.
				opt.Progress = o.Progress
			}
			r, err := meth.Attribute(ctx, []*tensor.Tensor{ones}, opt)
			if err != nil {
				return nil, fmt.Errorf("llm: %w", err)
			}
			if len(r.Attributions) != 1 || r.Attributions[0].Len() != nf {
				return nil, fmt.Errorf("llm: the method gave no attribution of the %d features", nf)
			}
			for i, v := range r.Attributions[0].F {
				sum[j][i] += float64(v)
			}
		}
	}
	for j := range sum {
		for i := range sum[j] {
			sum[j][i] /= float64(trials)
		}
	}
	formatted := inp.FormatAttr(sum)
	var tokenRows [][]float64
	if perToken {
		tokenRows = formatted[1:]
	}
	return newResult(a.Tokenizer, inp, formatted[0], tokenRows, target)
}

// newResult builds a Result.
func newResult(tok Tokenizer, inp InterpretableInput, seq []float64, tokenRows [][]float64, target []int64) (*Result, error) {
	in, err := inp.FeatureNames(tok)
	if err != nil {
		return nil, err
	}
	out, err := tokensOf(tok, target)
	if err != nil {
		return nil, err
	}
	res := &Result{SeqAttr: tensor.New(len(seq)), InputTokens: in, OutputTokens: out, TargetIDs: slices.Clone(target)}
	for i, v := range seq {
		res.SeqAttr.F[i] = float32(v)
	}
	if tokenRows != nil {
		res.TokenAttr = tensor.New(len(tokenRows), len(seq))
		for j, row := range tokenRows {
			for i, v := range row {
				res.TokenAttr.F[j*len(seq)+i] = float32(v)
			}
		}
	}
	return res, nil
}

// LLMGradientAttribution explains a language model's continuation with a
// gradient method on its embedding layer (Captum's LLMGradientAttribution):
// for each continuation token j, the method attributes the token's
// log-probability given the prompt and the tokens before it to the
// embeddings of the prompt's tokens; the attributions are summed over the
// embedding dimension and kept for the prompt's features, giving row j of
// TokenAttr; SeqAttr is their sum over the rows (Miglani et al., "Using
// Captum to Explain Generative Language Models", NLP-OSS 2023). With
// LayerIntegratedGradients (Sundararajan, Taly and Yan, "Axiomatic
// Attribution for Deep Networks", ICML 2017) the path runs from the
// embeddings of the prompt with every feature token replaced by the
// baseline token to the actual embeddings; with LayerGradientXActivation
// (Shrikumar et al., 2016) it is the gradient times the embeddings. Only
// TextTokenInput is supported, as in Captum. Cost: for a continuation of T
// tokens, T runs of the method (LayerIntegratedGradients: 2 forward rows
// and NSteps forward and backward rows each; LayerGradientXActivation: one
// forward and backward row each).
type LLMGradientAttribution struct {
	// Method is an *attr.LayerIntegratedGradients or
	// *attr.LayerGradientXActivation with its parameters; its Net is
	// ignored (a copy runs on the Model's Net), and an empty Layer means
	// the embedding lookup (Model.EmbeddingLayer).
	Method    attr.Method
	Model     *Model
	Tokenizer Tokenizer
}

// Attribute attributes the continuation (o.Target, o.TargetIDs, or the
// greedy generation) to the tokens of inp. NumTrials is ignored: the
// methods are deterministic.
func (a *LLMGradientAttribution) Attribute(ctx context.Context, inp *TextTokenInput, o Options) (*Result, error) {
	if a.Model == nil || a.Tokenizer == nil || inp == nil {
		return nil, fmt.Errorf("llm: LLMGradientAttribution needs a Model, a Tokenizer and an input")
	}
	ids, pos, base, err := inp.resolve(a.Tokenizer)
	if err != nil {
		return nil, err
	}
	if len(pos) == 0 {
		return nil, fmt.Errorf("llm: the input has no features")
	}
	if err := a.Model.checkIDs(ids); err != nil {
		return nil, err
	}
	if err := a.Model.checkIDs([]int64{base}); err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	target, err := targetIDs(ctx, a.Model, a.Tokenizer, ids, o)
	if err != nil {
		return nil, err
	}
	var meth attr.Method
	useBase := false
	switch t := a.Method.(type) {
	case *attr.LayerIntegratedGradients:
		c := *t
		c.Net = a.Model.Net
		if c.Layer == "" {
			if c.Layer, err = a.Model.EmbeddingLayer(); err != nil {
				return nil, err
			}
		}
		meth, useBase = &c, true
	case *attr.LayerGradientXActivation:
		c := *t
		c.Net = a.Model.Net
		if c.Layer == "" {
			if c.Layer, err = a.Model.EmbeddingLayer(); err != nil {
				return nil, err
			}
		}
		meth = &c
	case nil:
		return nil, fmt.Errorf("llm: LLMGradientAttribution has no Method")
	default:
		return nil, fmt.Errorf("llm: LLMGradientAttribution does not support %T (use LayerIntegratedGradients or LayerGradientXActivation)", a.Method)
	}
	rows := make([][]float64, len(target))
	seq := make([]float64, len(pos))
	for j := range target {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		l := len(ids) + j
		x := tensor.NewInt(1, l)
		copy(x.I, ids)
		copy(x.I[len(ids):], target[:j])
		opt := attr.Options{Target: attr.Class(int(target[j])), Additional: a.Model.Additional(1, l)}
		if useBase {
			b := x.Clone()
			for _, p := range pos {
				b.I[p] = base
			}
			opt.Baselines = []*tensor.Tensor{b}
		}
		r, err := meth.Attribute(ctx, []*tensor.Tensor{x}, opt)
		if err != nil {
			return nil, fmt.Errorf("llm: target token %d: %w", j, err)
		}
		if len(r.Attributions) != 1 || r.Attributions[0].Rank() != 3 || r.Attributions[0].Shape[1] != l {
			var shape []int
			if len(r.Attributions) > 0 {
				shape = r.Attributions[0].Shape
			}
			return nil, fmt.Errorf("llm: the layer's attribution has shape %v; an embedding gives [1, %d, D]", shape, l)
		}
		s, err := attr.SumTokens(r.Attributions[0])
		if err != nil {
			return nil, err
		}
		rows[j] = make([]float64, len(pos))
		for k, p := range pos {
			rows[j][k] = float64(s.F[p])
			seq[k] += float64(s.F[p])
		}
		if o.Progress != nil {
			o.Progress(j+1, len(target))
		}
	}
	return newResult(a.Tokenizer, inp, seq, rows, target)
}
