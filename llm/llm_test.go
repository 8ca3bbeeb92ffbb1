package llm

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/llm/tokenizer"
	"github.com/loupe-ml/loupe/tensor"
)

// idTok is a tokenizer whose tokens are "t0", "t1", ...: enough for inputs
// given as ids.
type idTok struct{ n int }

func (t idTok) Encode(text string) ([]int64, error) {
	var out []int64
	for _, w := range strings.Fields(text) {
		id, ok := t.TokenToID(w)
		if !ok {
			return nil, fmt.Errorf("unknown token %q", w)
		}
		out = append(out, id)
	}
	return out, nil
}

func (t idTok) Decode(ids []int64, _ bool) (string, error) {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprintf("t%d", id)
	}
	return strings.Join(s, " "), nil
}

func (t idTok) TokenToID(s string) (int64, bool) {
	var id int64
	if _, err := fmt.Sscanf(s, "t%d", &id); err != nil || id < 0 || id >= int64(t.n) {
		return 0, false
	}
	return id, true
}

func (t idTok) IDToToken(id int64) (string, bool) {
	return fmt.Sprintf("t%d", id), id >= 0 && id < int64(t.n)
}

// reference is testdata/reference.json, computed with PyTorch by
// testdata/make_tiny_hf_lm.py.
type reference struct {
	Prompt  []int64     `json:"prompt"`
	Target  []int64     `json:"target"`
	SkipIDs []int64     `json:"skip_ids"`
	Base    int64       `json:"baseline"`
	FA      [][]float64 `json:"feature_ablation"`
	SV      [][]float64 `json:"shapley_values"`
	GxA     [][]float64 `json:"gradient_x_activation"`
	IG      [][]float64 `json:"integrated_gradients_n8"`
	Greedy  []int64     `json:"greedy_4"`
}

func setup(t *testing.T) (*Model, *reference, *TextTokenInput) {
	t.Helper()
	lm, err := Load("testdata/tiny_hf_lm.onnx")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("testdata/reference.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref reference
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	if lm.AttentionMask != "attention_mask" || lm.Input != "input_ids" || lm.VocabSize != 16 {
		t.Fatalf("model inputs %q %q, vocab %d", lm.Input, lm.AttentionMask, lm.VocabSize)
	}
	return lm, &ref, &TextTokenInput{IDs: ref.Prompt, SkipIDs: ref.SkipIDs, Baseline: ref.Base}
}

// near checks got [rows, F] (seq row first when seq is set) against want.
func near(t *testing.T, what string, got *tensor.Tensor, want [][]float64, tol float64) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: no attribution", what)
	}
	n := 0
	for _, row := range want {
		n += len(row)
	}
	if got.Len() != n {
		t.Fatalf("%s: shape %v, want %d values", what, got.Shape, n)
	}
	k := 0
	for r, row := range want {
		for i, w := range row {
			if g := float64(got.F[k]); math.Abs(g-w) > tol {
				t.Errorf("%s[%d][%d] = %.7g, want %.7g", what, r, i, g, w)
			}
			k++
		}
	}
}

func TestFeatureAblationAgainstTorch(t *testing.T) {
	lm, ref, inp := setup(t)
	a := &LLMAttribution{Method: &attr.FeatureAblation{}, Model: lm, Tokenizer: idTok{16}}
	r, err := a.Attribute(context.Background(), inp, Options{TargetIDs: ref.Target})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "seq_attr", r.SeqAttr, ref.FA[:1], 2e-5)
	near(t, "token_attr", r.TokenAttr, ref.FA[1:], 2e-5)
	if !slices.Equal(r.InputTokens, []string{"t5", "t9", "t3", "t7"}) || !slices.Equal(r.OutputTokens, []string{"t4", "t11", "t2"}) {
		t.Errorf("tokens %q -> %q", r.InputTokens, r.OutputTokens)
	}

	// prob: the same ablation on exp of the scores.
	p := &LLMAttribution{Method: &attr.FeatureAblation{}, Model: lm, Tokenizer: idTok{16}, AttrTarget: "prob"}
	rp, err := p.Attribute(context.Background(), inp, Options{TargetIDs: ref.Target})
	if err != nil {
		t.Fatal(err)
	}
	if rp.TokenAttr.Shape[0] != 3 || rp.SeqAttr.F[0] == r.SeqAttr.F[0] {
		t.Errorf("prob attributions equal the log_prob ones: %v", rp.SeqAttr.F)
	}
}

func TestShapleyAgainstTorch(t *testing.T) {
	lm, ref, inp := setup(t)
	a := &LLMAttribution{Method: &attr.ShapleyValues{}, Model: lm, Tokenizer: idTok{16}}
	r, err := a.Attribute(context.Background(), inp, Options{TargetIDs: ref.Target})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "seq_attr", r.SeqAttr, ref.SV[:1], 2e-5)
	near(t, "token_attr", r.TokenAttr, ref.SV[1:], 2e-5)

	// Sampled Shapley values are efficient for any permutations: each row
	// sums to f(all) - f(none), as the exact ones do.
	s := &LLMAttribution{Method: &attr.ShapleyValueSampling{NSamples: 3, Seed: 7}, Model: lm, Tokenizer: idTok{16}}
	rs, err := s.Attribute(context.Background(), inp, Options{TargetIDs: ref.Target, NumTrials: 2})
	if err != nil {
		t.Fatal(err)
	}
	for row := range 4 {
		var got, want float64
		for i := range 4 {
			want += ref.SV[row][i]
			if row == 0 {
				got += float64(rs.SeqAttr.F[i])
			} else {
				got += float64(rs.TokenAttr.F[(row-1)*4+i])
			}
		}
		if math.Abs(got-want) > 2e-5 {
			t.Errorf("row %d: sampled Shapley values sum to %.6g, want %.6g", row, got, want)
		}
	}
}

func TestLimeAndKernelShapSequenceOnly(t *testing.T) {
	lm, ref, inp := setup(t)
	// KernelShap with enough samples on 4 features comes close to the
	// exact Shapley values.
	k := &LLMAttribution{Method: &attr.KernelShap{NSamples: 400, Seed: 1}, Model: lm, Tokenizer: idTok{16}}
	r, err := k.Attribute(context.Background(), inp, Options{TargetIDs: ref.Target})
	if err != nil {
		t.Fatal(err)
	}
	if r.TokenAttr != nil {
		t.Error("KernelShap gave token attributions; Captum gives the sequence only")
	}
	var num, den float64
	for i, w := range ref.SV[0] {
		d := float64(r.SeqAttr.F[i]) - w
		num += d * d
		den += w * w
	}
	if rel := math.Sqrt(num / den); rel > 0.05 {
		t.Errorf("KernelShap %v vs Shapley values %v: relative error %.3g", r.SeqAttr.F, ref.SV[0], rel)
	}
	l := &LLMAttribution{Method: &attr.Lime{NSamples: 50, Seed: 1}, Model: lm, Tokenizer: idTok{16}}
	r, err = l.Attribute(context.Background(), inp, Options{TargetIDs: ref.Target})
	if err != nil {
		t.Fatal(err)
	}
	if r.TokenAttr != nil || r.SeqAttr.Len() != 4 {
		t.Errorf("Lime: seq %v, token %v", r.SeqAttr, r.TokenAttr)
	}
}

func TestGradientAgainstTorch(t *testing.T) {
	lm, ref, inp := setup(t)
	g := &LLMGradientAttribution{Method: &attr.LayerGradientXActivation{}, Model: lm, Tokenizer: idTok{16}}
	r, err := g.Attribute(context.Background(), inp, Options{TargetIDs: ref.Target})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "gradient x activation", r.TokenAttr, ref.GxA, 1e-5)
	for i := range 4 {
		var s float64
		for j := range 3 {
			s += ref.GxA[j][i]
		}
		if math.Abs(float64(r.SeqAttr.F[i])-s) > 1e-5 {
			t.Errorf("seq_attr[%d] = %g, want the rows' sum %g", i, r.SeqAttr.F[i], s)
		}
	}
	ig := &LLMGradientAttribution{Method: &attr.LayerIntegratedGradients{NSteps: 8}, Model: lm, Tokenizer: idTok{16}}
	r, err = ig.Attribute(context.Background(), inp, Options{TargetIDs: ref.Target})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "integrated gradients", r.TokenAttr, ref.IG, 1e-5)
}

func TestGenerate(t *testing.T) {
	lm, ref, inp := setup(t)
	got, err := lm.Generate(context.Background(), ref.Prompt, GenArgs{MaxNewTokens: 4})
	if err != nil || !slices.Equal(got, ref.Greedy) {
		t.Errorf("Generate = %v, %v, want %v", got, err, ref.Greedy)
	}
	got, err = lm.Generate(context.Background(), ref.Prompt, GenArgs{MaxNewTokens: 4, EOS: []int64{ref.Greedy[2]}})
	if err != nil || !slices.Equal(got, ref.Greedy[:3]) {
		t.Errorf("Generate with EOS = %v, %v, want %v", got, err, ref.Greedy[:3])
	}
	// No target: the greedy continuation is explained.
	a := &LLMAttribution{Method: &attr.FeatureAblation{}, Model: lm, Tokenizer: idTok{16}}
	r, err := a.Attribute(context.Background(), inp, Options{GenArgs: GenArgs{MaxNewTokens: 4}})
	if err != nil || !slices.Equal(r.TargetIDs, ref.Greedy) {
		t.Errorf("greedy target: %v, %v, want %v", r, err, ref.Greedy)
	}
}

func TestTemplate(t *testing.T) {
	for _, c := range []struct {
		tmpl  string
		vals  []string
		names []string
		want  string
		err   string
	}{
		{"{} and {}", []string{"a", "b"}, nil, "a and b", ""},
		{"{1} {0} {{x}}", []string{"a", "b"}, nil, "b a {x}", ""},
		{"{who} went {where}", []string{"he", "home"}, []string{"who", "where"}, "he went home", ""},
		{"{} {} {}", []string{"a", "b"}, nil, "", "2 values"},
		{"{x}", []string{"a"}, nil, "", "no value named"},
		{"{0:>3}", []string{"a"}, nil, "", "not supported"},
		{"{", []string{"a"}, nil, "", "unclosed"},
		{"}", []string{"a"}, nil, "", "single"},
	} {
		got, err := formatTemplate(c.tmpl, c.vals, c.names)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("formatTemplate(%q) = %q, %v; want an error with %q", c.tmpl, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("formatTemplate(%q) = %q, %v, want %q", c.tmpl, got, err, c.want)
		}
	}

	tok, err := tokenizer.Load("tokenizer/testdata/word_level.json")
	if err != nil {
		t.Fatal(err)
	}
	in := &TextTemplateInput{Template: "{} {} went to the {}", Values: []string{"the", "dog", "park"},
		Baselines: []string{"a", "cat", "house"}, Mask: []int{5, 5, 2}}
	if n, err := in.NumFeatures(tok); err != nil || n != 2 {
		t.Fatalf("NumFeatures = %d, %v, want 2 mask groups", n, err)
	}
	// Mask ids sorted: 2 is feature 0 (park), 5 is feature 1 (the dog).
	ids, err := in.Tokens(tok, []bool{true, false})
	if err != nil || !slices.Equal(ids, []int64{1, 3, 5, 6, 7, 2, 8}) {
		t.Errorf("Tokens(park on, the dog off) = %v, %v", ids, err)
	}
	got := in.FormatAttr([][]float64{{0.5, -1}})
	if !slices.Equal(got[0], []float64{-1, -1, 0.5}) {
		t.Errorf("FormatAttr = %v, want [-1 -1 0.5]", got)
	}
	empty := &TextTemplateInput{Template: "{} x", Values: []string{"y"}}
	if s, err := empty.Text([]bool{false}); err != nil || s != " x" {
		t.Errorf("default baseline: %q, %v, want %q", s, err, " x")
	}
}

func TestErrors(t *testing.T) {
	lm, ref, inp := setup(t)
	ctx := context.Background()
	tok := idTok{16}
	for _, c := range []struct {
		a    *LLMAttribution
		o    Options
		want string
	}{
		{&LLMAttribution{Method: &attr.Occlusion{}, Model: lm, Tokenizer: tok}, Options{TargetIDs: ref.Target}, "does not support"},
		{&LLMAttribution{Model: lm, Tokenizer: tok}, Options{TargetIDs: ref.Target}, "no Method"},
		{&LLMAttribution{Method: &attr.FeatureAblation{}, Model: lm, Tokenizer: tok, AttrTarget: "logit"}, Options{TargetIDs: ref.Target}, "AttrTarget"},
		{&LLMAttribution{Method: &attr.FeatureAblation{}, Model: lm, Tokenizer: tok}, Options{TargetIDs: []int64{99}}, "outside the vocabulary"},
		{&LLMAttribution{Method: &attr.FeatureAblation{}, Model: lm, Tokenizer: tok}, Options{TargetIDs: []int64{}}, "no tokens"},
		{&LLMAttribution{Method: &attr.FeatureAblation{}, Model: lm, Tokenizer: tok}, Options{Target: "t1", SkipTokens: []string{"t1"}}, "no tokens left"},
		{&LLMAttribution{Method: &attr.FeatureAblation{}, Model: lm, Tokenizer: tok}, Options{Target: "t1", TargetIDs: []int64{1}}, "not both"},
		{&LLMAttribution{Method: &attr.FeatureAblation{}, Tokenizer: tok}, Options{TargetIDs: ref.Target}, "needs a Model"},
	} {
		_, err := c.a.Attribute(ctx, inp, c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one mentioning %q", c.o, err, c.want)
		}
	}
	g := &LLMGradientAttribution{Method: &attr.Saliency{}, Model: lm, Tokenizer: tok}
	if _, err := g.Attribute(ctx, inp, Options{TargetIDs: ref.Target}); err == nil || !strings.Contains(err.Error(), "does not support") {
		t.Errorf("Saliency: %v", err)
	}
	bad := &TextTokenInput{IDs: []int64{1, 40}}
	g = &LLMGradientAttribution{Method: &attr.LayerGradientXActivation{}, Model: lm, Tokenizer: tok}
	if _, err := g.Attribute(ctx, bad, Options{TargetIDs: ref.Target}); err == nil || !strings.Contains(err.Error(), "outside the vocabulary") {
		t.Errorf("prompt id 40: %v", err)
	}
	if _, err := lm.LogProbs(ctx, [][]int64{{}}); err == nil {
		t.Error("LogProbs of an empty sequence gave no error")
	}
	ctx2, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := lm.LogProbs(ctx2, [][]int64{{1, 2}}); err == nil {
		t.Error("LogProbs ignored a cancelled context")
	}
}

// TestTransformer runs a GPT-2-shaped transformer (attention with a causal
// and an attention mask, LayerNorm, GELU, position ids) against PyTorch:
// the next-token log-probabilities and integrated gradients on the token
// embedding (testdata/make_tiny_gpt.py).
func TestTransformer(t *testing.T) {
	lm, err := Load("testdata/tiny_gpt.onnx")
	if err != nil {
		t.Fatal(err)
	}
	if lm.AttentionMask == "" || lm.PositionIDs == "" {
		t.Fatalf("mask %q, positions %q not found", lm.AttentionMask, lm.PositionIDs)
	}
	if emb, err := lm.EmbeddingLayer(); err != nil || emb != "/wte/Gather_output_0" {
		t.Errorf("EmbeddingLayer = %q, %v, want the token embedding /wte/Gather_output_0", emb, err)
	}
	b, err := os.ReadFile("testdata/tiny_gpt_reference.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Seq     []int64     `json:"seq"`
		LP      []float64   `json:"log_probs"`
		Prompt  []int64     `json:"prompt"`
		Target  []int64     `json:"target"`
		Base    int64       `json:"baseline"`
		SkipIDs []int64     `json:"skip_ids"`
		IG      [][]float64 `json:"integrated_gradients_n8"`
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	lp, err := lm.LogProbs(context.Background(), [][]int64{ref.Seq, ref.Seq[:3]})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "log-probabilities", &tensor.Tensor{Shape: []int{len(ref.LP)}, F: lp.F[:len(ref.LP)], DType: tensor.Float32}, [][]float64{ref.LP}, 1e-5)
	g := &LLMGradientAttribution{Method: &attr.LayerIntegratedGradients{NSteps: 8}, Model: lm, Tokenizer: idTok{40}}
	r, err := g.Attribute(context.Background(), &TextTokenInput{IDs: ref.Prompt, SkipIDs: ref.SkipIDs, Baseline: ref.Base}, Options{TargetIDs: ref.Target})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "integrated gradients", r.TokenAttr, ref.IG, 2e-5)
}

func TestProgress(t *testing.T) {
	lm, ref, inp := setup(t)
	var calls, last, total int
	a := &LLMAttribution{Method: &attr.FeatureAblation{PerturbationsPerEval: 1}, Model: lm, Tokenizer: idTok{16}}
	_, err := a.Attribute(context.Background(), inp, Options{TargetIDs: ref.Target, Progress: func(d, n int) { calls, last, total = calls+1, d, n }})
	if err != nil {
		t.Fatal(err)
	}
	if calls == 0 || last != total {
		t.Errorf("progress: %d calls, last %d of %d", calls, last, total)
	}
}

func TestNilTokenizer(t *testing.T) {
	in := &TextTokenInput{IDs: []int64{1, 2, 3}, SkipTokens: []string{"<s>"}}
	if _, err := in.Tokens(nil, nil); err == nil {
		t.Error("skip tokens without a tokenizer gave no error")
	}
	in = &TextTokenInput{IDs: []int64{1, 2, 3}, SkipIDs: []int64{1}}
	ids, err := in.Tokens(nil, []bool{false, true})
	if err != nil || !slices.Equal(ids, []int64{1, 0, 3}) {
		t.Errorf("Tokens = %v, %v, want [1 0 3]", ids, err)
	}
	if _, err := in.FeatureNames(nil); err == nil {
		t.Error("FeatureNames without a tokenizer gave no error")
	}
	if _, err := (&TextTokenInput{Text: "a"}).Tokens(nil, nil); err == nil {
		t.Error("text without a tokenizer gave no error")
	}
}
