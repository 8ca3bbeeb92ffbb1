package llm

import (
	"context"
	"testing"

	"github.com/loupe-ml/loupe/attr"
)

// BenchmarkFeatureAblationTransformer times LLMAttribution with
// FeatureAblation on the two-block transformer: 4 features, 2 target
// tokens, (1 + 4) x 2 prefixes scored.
func BenchmarkFeatureAblationTransformer(b *testing.B) {
	lm, err := Load("testdata/tiny_gpt.onnx")
	if err != nil {
		b.Fatal(err)
	}
	a := &LLMAttribution{Method: &attr.FeatureAblation{}, Model: lm, Tokenizer: idTok{40}}
	inp := &TextTokenInput{IDs: []int64{1, 5, 9, 3, 7}, SkipIDs: []int64{1}}
	for b.Loop() {
		if _, err := a.Attribute(context.Background(), inp, Options{TargetIDs: []int64{2, 11}}); err != nil {
			b.Fatal(err)
		}
	}
}
