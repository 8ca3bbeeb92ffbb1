// Package llm explains causal language models exported to ONNX, as
// Captum's LLM attribution does: which parts of a prompt make the model
// likely to continue it with a given text.
//
// A Model wraps the ONNX model (token ids in, next-token logits out, with an
// optional attention mask); a Tokenizer turns text into ids (package
// llm/tokenizer reads Hugging Face tokenizer.json files: BPE, byte-level as
// GPT-2's, WordPiece and WordLevel). The prompt is an InterpretableInput: a
// TextTemplateInput, whose features are the values filled into a template,
// or a TextTokenInput, whose features are its tokens. The continuation (the
// target) is given as text or ids, or generated greedily, and scored by
// teacher forcing: the log-probability of each of its tokens given the
// prompt and the tokens before it.
//
// LLMAttribution runs a perturbation method of package attr
// (FeatureAblation, ShapleyValueSampling, ShapleyValues, Lime, KernelShap)
// over the prompt's features and gives the attribution of the whole
// continuation's log-probability (SeqAttr) and, except for Lime and
// KernelShap, of each token's (TokenAttr). LLMGradientAttribution runs a
// layer gradient method (LayerIntegratedGradients,
// LayerGradientXActivation) on the embedding layer, one run per
// continuation token. Names, parameters and defaults are Captum's; the
// results match Captum 0.8's recorded answers (internal/conformance).
package llm
