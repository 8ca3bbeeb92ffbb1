package llm_test

import (
	"context"
	"fmt"
	"log"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/internal/testmodels"
	"github.com/loupe-ml/loupe/llm"
	"github.com/loupe-ml/loupe/llm/tokenizer"
)

// Which words of a prompt make a small language model continue it with
// "it ran home"? Each template value is ablated (replaced by its
// baseline) in turn.
func ExampleLLMAttribution() {
	lm, err := llm.Load(testmodels.Path("tiny_lm_s0.onnx"))
	if err != nil {
		log.Fatal(err)
	}
	tok, err := tokenizer.Load("tokenizer/testdata/word_level.json")
	if err != nil {
		log.Fatal(err)
	}
	a := &llm.LLMAttribution{Method: &attr.FeatureAblation{}, Model: lm, Tokenizer: tok}
	inp := &llm.TextTemplateInput{Template: "{} {} went to the {} and",
		Values: []string{"the", "dog", "park"}, Baselines: []string{"a", "cat", "house"}}
	r, err := a.Attribute(context.Background(), inp, llm.Options{Target: "it ran home", SkipTokens: []string{"<s>"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(r.InputTokens, "->", r.OutputTokens)
	for i, w := range r.InputTokens {
		fmt.Printf("%s %.4f\n", w, r.SeqAttr.F[i])
	}
	// Output:
	// [the dog park] -> [it ran home]
	// the 0.1134
	// dog 0.0233
	// park 0.1118
}

// Integrated gradients over the embeddings, one run per continuation
// token: row j of TokenAttr explains token j.
func ExampleLLMGradientAttribution() {
	lm, err := llm.Load(testmodels.Path("tiny_lm_s0.onnx"))
	if err != nil {
		log.Fatal(err)
	}
	tok, err := tokenizer.Load("tokenizer/testdata/word_level.json")
	if err != nil {
		log.Fatal(err)
	}
	g := &llm.LLMGradientAttribution{Method: &attr.LayerIntegratedGradients{NSteps: 16}, Model: lm, Tokenizer: tok}
	inp := &llm.TextTokenInput{Text: "he went to the big house", SkipTokens: []string{"<s>"}}
	r, err := g.Attribute(context.Background(), inp, llm.Options{Target: "she is happy", SkipTokens: []string{"<s>"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(r.InputTokens, r.TokenAttr.Shape)
	fmt.Printf("%.4f\n", r.SeqAttr.F)
	// Output:
	// [he went to the big house] [3 6]
	// [-0.0311 0.0499 0.0941 -0.0122 0.0272 0.0450]
}
