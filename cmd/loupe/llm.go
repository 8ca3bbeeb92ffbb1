package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/llm"
	"github.com/loupe-ml/loupe/llm/tokenizer"
	"github.com/loupe-ml/loupe/npy"
	"github.com/loupe-ml/loupe/tensor"
	"github.com/loupe-ml/loupe/viz"
)

// llmUsage is loupe explain's form for language models.
const llmUsage = `loupe explain --model lm.onnx [--tokenizer tokenizer.json] --prompt TEXT [--continuation TEXT]
               [--method FeatureAblation|ShapleyValueSampling|ShapleyValues|Lime|KernelShap|LayerIntegratedGradients|LayerGradientXActivation]
               [--template "{} went to the {}" --value v --baseline-value b ...] [--param k=v]... [--out dir] [--format png|svg|both|none]`

// isLLM reports whether loupe explain's arguments ask for a language
// model's attribution (--prompt).
func isLLM(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && (name == "prompt" || name == "template") {
			return true
		}
	}
	return false
}

// llmFlags are loupe explain's flags for language models.
type llmFlags struct {
	model, tokenizer, prompt, continuation, method, layer string
	template, attrTarget, baselineToken, out, format      string
	values, baselineValues, params, skip                  multi
	maxNewTokens                                          int
	quiet                                                 bool
}

// cmdExplainLLM attributes a language model's continuation of a prompt to
// the prompt's tokens (or template values), writes the attributions as
// .npy and JSON, and draws them (Captum's plot_token_attr and
// plot_seq_attr).
func cmdExplainLLM(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintf(stderr, "usage:\n  %s\n", llmUsage); fs.PrintDefaults() }
	f := &llmFlags{}
	fs.StringVar(&f.model, "model", "", "causal language model (.onnx): input_ids or tokens [N, L] (and attention_mask) in, logits [N, V] or [N, L, V] out")
	fs.StringVar(&f.tokenizer, "tokenizer", "", "Hugging Face tokenizer.json (default: tokenizer.json beside the model)")
	fs.StringVar(&f.prompt, "prompt", "", "the prompt; its tokens are the features (TextTokenInput)")
	fs.StringVar(&f.template, "template", "", "a template filled with the --value flags, each value a feature (TextTemplateInput), instead of --prompt")
	fs.Var(&f.values, "value", "a template value (repeatable, in order)")
	fs.Var(&f.baselineValues, "baseline-value", "the baseline of each template value (repeatable; default the empty string)")
	fs.StringVar(&f.continuation, "continuation", "", "the continuation explained (default: the model's greedy continuation)")
	fs.IntVar(&f.maxNewTokens, "max-new-tokens", 25, "without --continuation: how many tokens to generate")
	fs.StringVar(&f.method, "method", "FeatureAblation", "FeatureAblation, ShapleyValueSampling, ShapleyValues, Lime, KernelShap, LayerIntegratedGradients or LayerGradientXActivation")
	fs.Var(&f.params, "param", "method parameter name=value (repeatable): n_samples, perturbations_per_eval, seed, n_steps, method (integration rule), num_trials")
	fs.StringVar(&f.layer, "layer", "", "gradient methods: the embedding layer (default: the model's embedding lookup)")
	fs.StringVar(&f.attrTarget, "attr-target", "log_prob", "perturbation methods: log_prob or prob")
	fs.StringVar(&f.baselineToken, "baseline-token", "", "--prompt: the token that replaces absent tokens (default id 0, as Captum)")
	fs.Var(&f.skip, "skip-token", "--prompt: a token that is not a feature (repeatable; default the tokenizer's special tokens); also removed from the continuation")
	fs.StringVar(&f.out, "out", "loupe-out", "folder for the attributions and figures")
	fs.StringVar(&f.format, "format", "png", "figures: png, svg, both or none")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress bar")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	if (f.prompt == "") == (f.template == "") {
		return usageError{errors.New("give --prompt or --template (with --value), not both\n  " + llmUsage)}
	}
	switch f.format {
	case "png", "svg", "both", "none":
	default:
		return usageError{fmt.Errorf("--format %q: png, svg, both or none", f.format)}
	}
	if f.maxNewTokens < 1 || f.maxNewTokens > 4096 {
		return usageError{fmt.Errorf("--max-new-tokens %d: 1 to 4096", f.maxNewTokens)}
	}
	if f.model == "" {
		return usageError{errors.New("--model is required")}
	}
	tokPath := f.tokenizer
	if tokPath == "" {
		tokPath = filepath.Join(filepath.Dir(f.model), "tokenizer.json")
	}
	tok, err := tokenizer.Load(tokPath)
	if err != nil {
		return fmt.Errorf("--tokenizer: %w", err)
	}
	lm, err := llm.Load(f.model)
	if err != nil {
		return err
	}
	p, err := parseLLMParams(f.params)
	if err != nil {
		return usageError{err}
	}
	o := llm.Options{Target: f.continuation, SkipTokens: f.skip, GenArgs: llm.GenArgs{MaxNewTokens: f.maxNewTokens}, NumTrials: p.numTrials}
	if !f.quiet {
		o.Progress = progressBar(stderr, f.method, false)
	}
	var inp llm.InterpretableInput
	if f.template != "" {
		if len(f.values) == 0 {
			return usageError{errors.New("--template needs its --value flags")}
		}
		t := &llm.TextTemplateInput{Template: f.template, Values: f.values}
		if len(f.baselineValues) > 0 {
			t.Baselines = f.baselineValues
		}
		inp = t
	} else {
		ti := &llm.TextTokenInput{Text: f.prompt, BaselineToken: f.baselineToken, SkipTokens: f.skip}
		if len(f.skip) == 0 {
			ids, err := tok.Encode(f.prompt)
			if err != nil {
				return fmt.Errorf("--prompt: %w", err)
			}
			for _, id := range ids {
				if tok.IsSpecial(id) {
					ti.SkipIDs = append(ti.SkipIDs, id)
				}
			}
		}
		inp = ti
	}
	if f.continuation != "" && len(f.skip) == 0 {
		// The continuation is encoded with the special tokens; drop them.
		for i := range tok.VocabSize() {
			if tok.IsSpecial(int64(i)) {
				s, _ := tok.IDToToken(int64(i))
				o.SkipTokens = append(o.SkipTokens, s)
			}
		}
	}
	var res *llm.Result
	switch f.method {
	case "FeatureAblation", "ShapleyValueSampling", "ShapleyValues", "Lime", "KernelShap":
		var m attr.Method
		switch f.method {
		case "FeatureAblation":
			m = &attr.FeatureAblation{PerturbationsPerEval: p.perEval}
		case "ShapleyValueSampling":
			m = &attr.ShapleyValueSampling{NSamples: p.nSamples, PerturbationsPerEval: p.perEval, Seed: p.seed}
		case "ShapleyValues":
			m = &attr.ShapleyValues{PerturbationsPerEval: p.perEval}
		case "Lime":
			m = &attr.Lime{NSamples: p.nSamples, PerturbationsPerEval: p.perEval, Seed: p.seed}
		case "KernelShap":
			m = &attr.KernelShap{NSamples: p.nSamples, PerturbationsPerEval: p.perEval, Seed: p.seed}
		}
		a := &llm.LLMAttribution{Method: m, Model: lm, Tokenizer: tok, AttrTarget: f.attrTarget}
		res, err = a.Attribute(ctx, inp, o)
	case "LayerIntegratedGradients", "LayerGradientXActivation":
		ti, ok := inp.(*llm.TextTokenInput)
		if !ok {
			return usageError{fmt.Errorf("%s takes --prompt (a TextTokenInput), not a template", f.method)}
		}
		var m attr.Method = &attr.LayerGradientXActivation{Layer: f.layer}
		if f.method == "LayerIntegratedGradients" {
			m = &attr.LayerIntegratedGradients{Layer: f.layer, NSteps: p.nSteps, Method: p.rule}
		}
		a := &llm.LLMGradientAttribution{Method: m, Model: lm, Tokenizer: tok}
		res, err = a.Attribute(ctx, ti, o)
	default:
		return usageError{fmt.Errorf("--method %q: language models take FeatureAblation, ShapleyValueSampling, ShapleyValues, Lime, KernelShap, LayerIntegratedGradients or LayerGradientXActivation", f.method)}
	}
	if err != nil {
		return err
	}
	return writeLLM(stdout, f, tok, res)
}

// llmParams are the --param values of a language-model attribution.
type llmParams struct {
	nSamples, perEval, nSteps, numTrials int
	seed                                 uint64
	rule                                 string
}

func parseLLMParams(kvs []string) (llmParams, error) {
	var p llmParams
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return p, fmt.Errorf("--param %q: want name=value", kv)
		}
		if k == "method" {
			p.rule = v
			continue
		}
		if k == "seed" {
			s, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return p, fmt.Errorf("--param seed=%s: %w", v, err)
			}
			p.seed = s
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return p, fmt.Errorf("--param %s=%s: not an integer", k, v)
		}
		lim := map[string]int{"n_samples": attr.MaxSamples, "perturbations_per_eval": attr.MaxBatch, "n_steps": attr.MaxSamples, "num_trials": 100}
		hi, known := lim[k]
		if !known {
			return p, fmt.Errorf("--param %s: language-model attributions take n_samples, perturbations_per_eval, seed, n_steps, method and num_trials", k)
		}
		if n < 1 || n > hi {
			return p, fmt.Errorf("--param %s=%d: 1 to %d", k, n, hi)
		}
		switch k {
		case "n_samples":
			p.nSamples = n
		case "perturbations_per_eval":
			p.perEval = n
		case "n_steps":
			p.nSteps = n
		case "num_trials":
			p.numTrials = n
		}
	}
	return p, nil
}

// pretty shows a token as text (GPT-2's "Ġthe" as " the"), the token
// itself when it does not decode.
func pretty(tok *tokenizer.Tokenizer, s string) string {
	id, ok := tok.TokenToID(s)
	if !ok {
		return s
	}
	d, err := tok.Decode([]int64{id}, false)
	if err != nil || d == "" {
		return s
	}
	return d
}

// writeLLM writes the result: seq_attr.npy, token_attr.npy, llm_attr.json
// and the figures, and prints the sequence attribution.
func writeLLM(stdout io.Writer, f *llmFlags, tok *tokenizer.Tokenizer, res *llm.Result) error {
	if err := os.MkdirAll(f.out, 0o755); err != nil {
		return err
	}
	in := make([]string, len(res.InputTokens))
	for i, s := range res.InputTokens {
		in[i] = s
		if f.template == "" {
			in[i] = pretty(tok, s)
		}
	}
	out := make([]string, len(res.OutputTokens))
	for i, s := range res.OutputTokens {
		out[i] = pretty(tok, s)
	}
	var written []string
	save := func(name string, t *tensor.Tensor) error {
		if t == nil {
			return nil
		}
		file := filepath.Join(f.out, name)
		if err := npy.WriteFile(file, t); err != nil {
			return err
		}
		written = append(written, file)
		return nil
	}
	if err := save("seq_attr.npy", res.SeqAttr); err != nil {
		return err
	}
	if err := save("token_attr.npy", res.TokenAttr); err != nil {
		return err
	}
	doc := map[string]any{"input_tokens": res.InputTokens, "output_tokens": res.OutputTokens,
		"target_token_ids": res.TargetIDs, "seq_attr": res.SeqAttr.F}
	if res.TokenAttr != nil {
		rows := make([][]float32, res.TokenAttr.Shape[0])
		n := res.SeqAttr.Len()
		for j := range rows {
			rows[j] = res.TokenAttr.F[j*n : (j+1)*n]
		}
		doc["token_attr"] = rows
	}
	b, err := json.MarshalIndent(doc, "", " ")
	if err != nil {
		return err
	}
	jf := filepath.Join(f.out, "llm_attr.json")
	if err := os.WriteFile(jf, append(b, '\n'), 0o644); err != nil {
		return err
	}
	written = append(written, jf)
	var exts []string
	switch f.format {
	case "png", "svg":
		exts = []string{f.format}
	case "both":
		exts = []string{"png", "svg"}
	}
	for _, ext := range exts {
		file := filepath.Join(f.out, "seq_attr."+ext)
		if err := viz.WriteSeqAttr(file, res.SeqAttr, in); err != nil {
			return err
		}
		written = append(written, file)
		if res.TokenAttr != nil {
			file := filepath.Join(f.out, "token_attr."+ext)
			if err := viz.WriteTokenAttr(file, res.TokenAttr, in, out); err != nil {
				return err
			}
			written = append(written, file)
		}
	}
	fmt.Fprintf(stdout, "continuation: %q\n", strings.Join(out, "|"))
	for i, s := range in {
		fmt.Fprintf(stdout, "%-20q %+.6f\n", s, res.SeqAttr.F[i])
	}
	for _, file := range written {
		fmt.Fprintf(stdout, "wrote %s\n", file)
	}
	return nil
}
