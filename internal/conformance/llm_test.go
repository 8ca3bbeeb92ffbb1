package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/llm"
	"github.com/loupe-ml/loupe/llm/tokenizer"
	"github.com/loupe-ml/loupe/tensor"
)

// llmRunners returns the runners of the llm group, Captum's
// LLMAttribution and LLMGradientAttribution.
func llmRunners() map[string]runner {
	return map[string]runner{
		"LLMAttribution":         runLLM,
		"LLMGradientAttribution": runLLM,
	}
}

// llmCase is the part of an llm case the generic Case does not decode.
type llmCase struct {
	Tokenizer struct {
		Kind  string   `json:"kind"`
		Vocab []string `json:"vocab"`
		UnkID int64    `json:"unk_id"`
		BosID int64    `json:"bos_id"`
	} `json:"tokenizer"`
	Input struct {
		Kind       string          `json:"kind"`
		Template   string          `json:"template"`
		Values     []string        `json:"values"`
		Baselines  json.RawMessage `json:"baselines"`
		Mask       []int           `json:"mask"`
		Text       string          `json:"text"`
		SkipTokens json.RawMessage `json:"skip_tokens"`
	} `json:"interpretable_input"`
	Constructor struct {
		AttrMethod string `json:"attr_method"`
		Layer      string `json:"attr_method_layer"`
		AttrTarget string `json:"attr_target"`
	}
	Expected struct {
		SeqAttr      json.RawMessage `json:"seq_attr"`
		TokenAttr    json.RawMessage `json:"token_attr"`
		InputTokens  []string        `json:"input_tokens"`
		OutputTokens []string        `json:"output_tokens"`
		TargetIDs    []int64         `json:"target_token_ids"`
	}
}

// wordTokenizerJSON writes the oracle's whitespace word tokenizer as a
// Hugging Face tokenizer.json: a WordLevel model split on whitespace, the
// beginning-of-sequence token prepended by a template.
func wordTokenizerJSON(vocab []string, unk, bos int64) ([]byte, error) {
	if unk < 0 || bos < 0 || int(unk) >= len(vocab) || int(bos) >= len(vocab) {
		return nil, fmt.Errorf("tokenizer: unk %d / bos %d outside the vocab of %d", unk, bos, len(vocab))
	}
	v := map[string]int{}
	for i, w := range vocab {
		v[w] = i
	}
	f := map[string]any{
		"version":      "1.0",
		"added_tokens": []any{map[string]any{"id": bos, "content": vocab[bos], "special": true}},
		"normalizer":   nil,
		"pre_tokenizer": map[string]any{
			"type": "WhitespaceSplit",
		},
		"model": map[string]any{"type": "WordLevel", "vocab": v, "unk_token": vocab[unk]},
		"post_processor": map[string]any{
			"type":   "TemplateProcessing",
			"single": []any{map[string]any{"SpecialToken": map[string]any{"id": vocab[bos], "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}},
			"pair":   []any{},
			"special_tokens": map[string]any{
				vocab[bos]: map[string]any{"id": vocab[bos], "ids": []int64{bos}, "tokens": []string{vocab[bos]}},
			},
		},
		"decoder": nil,
	}
	return json.Marshal(f)
}

// stringsOrIDs decodes a list of token strings or ids (or null).
func stringsOrIDs(raw json.RawMessage) ([]string, []int64, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil, nil
	}
	var s []string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil, nil
	}
	var ids []int64
	if err := json.Unmarshal(raw, &ids); err != nil {
		return nil, nil, fmt.Errorf("%s is neither token strings nor ids", raw)
	}
	return nil, ids, nil
}

func runLLM(ctx context.Context, c *Case, m *engine.Model) error {
	raw, err := readCaseFile(c)
	if err != nil {
		return err
	}
	var lc llmCase
	if err := json.Unmarshal(raw, &lc); err != nil {
		return err
	}
	if lc.Tokenizer.Kind != "WordTokenizer" {
		return fmt.Errorf("%w: tokenizer %q", errNotImplemented, lc.Tokenizer.Kind)
	}
	tj, err := wordTokenizerJSON(lc.Tokenizer.Vocab, lc.Tokenizer.UnkID, lc.Tokenizer.BosID)
	if err != nil {
		return err
	}
	tok, err := tokenizer.Parse(tj)
	if err != nil {
		return err
	}
	lm, err := llm.NewModel(m)
	if err != nil {
		return err
	}

	var inp llm.InterpretableInput
	switch lc.Input.Kind {
	case "TextTemplateInput":
		t := &llm.TextTemplateInput{Template: lc.Input.Template, Values: lc.Input.Values, Mask: lc.Input.Mask}
		if len(lc.Input.Baselines) > 0 && string(lc.Input.Baselines) != "null" {
			if err := json.Unmarshal(lc.Input.Baselines, &t.Baselines); err != nil {
				return fmt.Errorf("interpretable_input.baselines: %w", err)
			}
		}
		inp = t
	case "TextTokenInput":
		t := &llm.TextTokenInput{Text: lc.Input.Text}
		if err := json.Unmarshal(lc.Input.Baselines, &t.Baseline); err != nil {
			if err := json.Unmarshal(lc.Input.Baselines, &t.BaselineToken); err != nil {
				return fmt.Errorf("interpretable_input.baselines: %s", lc.Input.Baselines)
			}
		}
		if t.SkipTokens, t.SkipIDs, err = stringsOrIDs(lc.Input.SkipTokens); err != nil {
			return fmt.Errorf("interpretable_input.skip_tokens: %w", err)
		}
		inp = t
	default:
		return fmt.Errorf("%w: interpretable input %q", errNotImplemented, lc.Input.Kind)
	}
	// inputs[0] is the unperturbed tokenized prompt.
	in, err := c.Inputs()
	if err != nil {
		return err
	}
	prompt, err := inp.Tokens(tok, nil)
	if err != nil {
		return err
	}
	if len(in) != 1 || !slices.Equal(in[0].I, prompt) {
		return fmt.Errorf("prompt tokens %v, the case has %v", prompt, in[0].I)
	}

	var o llm.Options
	if t, ok := c.Params["target"]; ok && string(t) != "null" {
		if err := json.Unmarshal(t, &o.Target); err != nil {
			if err := json.Unmarshal(t, &o.TargetIDs); err != nil {
				return fmt.Errorf("params.target: %s", t)
			}
		}
	}
	skip, skipIDs, err := stringsOrIDs(c.Params["skip_tokens"])
	if err != nil {
		return fmt.Errorf("params.skip_tokens: %w", err)
	}
	for _, id := range skipIDs {
		s, _ := tok.IDToToken(id)
		skip = append(skip, s)
	}
	o.SkipTokens = skip
	if g, ok := c.Params["gen_args"]; ok && string(g) != "null" {
		var ga struct {
			MaxNewTokens int `json:"max_new_tokens"`
		}
		if err := json.Unmarshal(g, &ga); err != nil {
			return fmt.Errorf("params.gen_args: %w", err)
		}
		o.GenArgs.MaxNewTokens = ga.MaxNewTokens
	}
	if o.NumTrials, err = c.Int("num_trials", 1); err != nil {
		return err
	}

	var res *llm.Result
	switch c.Algorithm {
	case "LLMAttribution":
		var meth attr.Method
		switch lc.Constructor.AttrMethod {
		case "FeatureAblation":
			meth = &attr.FeatureAblation{}
		case "ShapleyValues":
			meth = &attr.ShapleyValues{}
		default:
			return fmt.Errorf("%w: LLMAttribution over %q", errNotImplemented, lc.Constructor.AttrMethod)
		}
		a := &llm.LLMAttribution{Method: meth, Model: lm, Tokenizer: tok, AttrTarget: lc.Constructor.AttrTarget}
		res, err = a.Attribute(ctx, inp, o)
	case "LLMGradientAttribution":
		ti, ok := inp.(*llm.TextTokenInput)
		if !ok {
			return fmt.Errorf("LLMGradientAttribution needs a TextTokenInput")
		}
		nsteps, err := c.Int("n_steps", 0)
		if err != nil {
			return err
		}
		method, err := c.String("method", "")
		if err != nil {
			return err
		}
		var meth attr.Method
		switch lc.Constructor.AttrMethod {
		case "LayerIntegratedGradients":
			meth = &attr.LayerIntegratedGradients{Layer: lc.Constructor.Layer, NSteps: nsteps, Method: method}
		case "LayerGradientXActivation":
			meth = &attr.LayerGradientXActivation{Layer: lc.Constructor.Layer}
		default:
			return fmt.Errorf("%w: LLMGradientAttribution over %q", errNotImplemented, lc.Constructor.AttrMethod)
		}
		a := &llm.LLMGradientAttribution{Method: meth, Model: lm, Tokenizer: tok}
		res, err = a.Attribute(ctx, ti, o)
		if err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	ex := lc.Expected
	if !slices.Equal(res.TargetIDs, ex.TargetIDs) {
		return fmt.Errorf("target_token_ids %v, want %v", res.TargetIDs, ex.TargetIDs)
	}
	if !slices.Equal(res.InputTokens, ex.InputTokens) {
		return fmt.Errorf("input_tokens %q, want %q", res.InputTokens, ex.InputTokens)
	}
	if !slices.Equal(res.OutputTokens, ex.OutputTokens) {
		return fmt.Errorf("output_tokens %q, want %q", res.OutputTokens, ex.OutputTokens)
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		got  *tensor.Tensor
	}{{"seq_attr", ex.SeqAttr, res.SeqAttr}, {"token_attr", ex.TokenAttr, res.TokenAttr}} {
		if len(f.raw) == 0 || string(f.raw) == "null" {
			if f.got != nil {
				return fmt.Errorf("%s: got one, the case has none", f.name)
			}
			continue
		}
		exp, err := c.Tensor(f.raw)
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		tols, err := c.ExactTols(f.name)
		if err != nil {
			return err
		}
		if err := Compare(f.got, exp, tols[0]); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
	}
	return nil
}

// readCaseFile reads a case's file again for the fields Case does not
// keep (the llm group's tokenizer and interpretable input, the concept
// group's concepts and layers, the influence group's training data).
func readCaseFile(c *Case) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(c.Dir, c.ID+".json"))
	if err != nil {
		return nil, fmt.Errorf("rereading the case: %w", err)
	}
	return b, nil
}
