package main

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/internal/testmodels"
	"github.com/loupe-ml/loupe/npy"
)

// TestExplainLLM runs loupe explain on the oracle's tiny language model
// with the oracle's template case and checks Captum's numbers.
func TestExplainLLM(t *testing.T) {
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"explain", "--model", testmodels.Path("tiny_lm_s0.onnx"),
		"--tokenizer", "../../llm/tokenizer/testdata/word_level.json",
		"--template", "{} {} went to the {} and", "--value", "the", "--value", "dog", "--value", "park",
		"--baseline-value", "a", "--baseline-value", "cat", "--baseline-value", "house",
		"--continuation", "it ran home", "--out", out, "--format", "both", "--quiet"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	seq, err := npy.ReadFile(filepath.Join(out, "seq_attr.npy"))
	if err != nil {
		t.Fatal(err)
	}
	// llm_featureablation_template.json's seq_attr.
	for i, w := range []float64{0.1134491, 0.023278236, 0.111753464} {
		if math.Abs(float64(seq.F[i])-w) > 1e-5 {
			t.Errorf("seq_attr[%d] = %g, want %g", i, seq.F[i], w)
		}
	}
	for _, f := range []string{"token_attr.npy", "llm_attr.json", "token_attr.png", "token_attr.svg", "seq_attr.png", "seq_attr.svg"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("%s not written: %v", f, err)
		}
	}
	if !strings.Contains(stdout.String(), `continuation: "it|ran|home"`) {
		t.Errorf("stdout:\n%s", stdout.String())
	}

	// Integrated gradients on a prompt, the continuation generated.
	stdout.Reset()
	err = run(context.Background(), []string{"explain", "--model", testmodels.Path("tiny_lm_s0.onnx"),
		"--tokenizer", "../../llm/tokenizer/testdata/word_level.json", "--prompt", "he went to the big house",
		"--method", "LayerIntegratedGradients", "--param", "n_steps=8", "--max-new-tokens", "2", "--out", out, "--format", "none", "--quiet"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	tok, err := npy.ReadFile(filepath.Join(out, "token_attr.npy"))
	if err != nil || len(tok.Shape) != 2 || tok.Shape[0] != 2 || tok.Shape[1] != 6 {
		t.Errorf("token_attr %v, %v; want [2 6] (<s> skipped as special)", tok, err)
	}
}

func TestExplainLLMErrors(t *testing.T) {
	model := testmodels.Path("tiny_lm_s0.onnx")
	tj := "../../llm/tokenizer/testdata/word_level.json"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--model", model, "--tokenizer", tj, "--prompt", "a", "--template", "{}"}, "not both"},
		{[]string{"--model", model, "--tokenizer", tj, "--prompt", "a", "--method", "Saliency"}, "language models take"},
		{[]string{"--model", model, "--tokenizer", tj, "--prompt", "a", "--param", "n_samples=0"}, "1 to"},
		{[]string{"--model", model, "--tokenizer", tj, "--prompt", "a", "--param", "alpha=1"}, "take n_samples"},
		{[]string{"--model", model, "--tokenizer", "missing.json", "--prompt", "a"}, "missing.json"},
		{[]string{"--model", model, "--tokenizer", tj, "--template", "{}", "--value", "a", "--method", "LayerGradientXActivation", "--continuation", "it"}, "not a template"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), append([]string{"explain", "--out", t.TempDir(), "--quiet"}, c.args...), &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error mentioning %q", c.args, err, c.want)
		}
	}
}
