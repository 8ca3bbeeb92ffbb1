// Package tokenizer reads Hugging Face tokenizer.json files and turns text
// into token ids and back, so that language models exported to ONNX can be
// fed from Go with the ids their Python tokenizer would give.
//
// It implements the parts of the Hugging Face tokenizers pipeline that
// common causal and masked language models use: added (special) tokens;
// the normalizers Lowercase, NFC/NFD/NFKC/NFKD, Strip, Prepend, Replace,
// BertNormalizer and Sequence; the pre-tokenizers ByteLevel (GPT-2's split),
// Whitespace, WhitespaceSplit, BertPreTokenizer, Metaspace, Split (with
// patterns Go's regexp accepts, and those whose only lookahead is the
// \s+(?!\S) alternative of GPT-4's, Llama 3's and Qwen's patterns), Digits,
// Punctuation and Sequence; the
// models BPE (byte-level as GPT-2, or with continuing-subword prefixes,
// end-of-word suffixes, unknown-token fusing and byte fallback), WordPiece
// and WordLevel; the post-processors TemplateProcessing, BertProcessing,
// RobertaProcessing, ByteLevel and Sequence; and the decoders ByteLevel,
// WordPiece, Metaspace, BPEDecoder, Replace, ByteFallback, Fuse, Strip and
// Sequence. A component it does not know is reported by name when the file
// is read, never skipped silently.
package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

// Tokenizer is a tokenizer read from a tokenizer.json file. It is safe for
// concurrent use.
type Tokenizer struct {
	norm  normalizer
	pre   preTokenizer
	model model
	post  postProcessor
	dec   decoder
	vocab map[string]int64
	inv   map[int64]string
	added []addedToken // longest content first
}

// addedToken is an entry of the file's added_tokens.
type addedToken struct {
	ID         int64  `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

// maxFileSize bounds the tokenizer files Load reads.
const maxFileSize = 256 << 20

// Load reads a tokenizer.json file.
func Load(path string) (*Tokenizer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if st.Size() > maxFileSize {
		return nil, fmt.Errorf("tokenizer: %s is %d bytes, more than the %d a tokenizer.json may have", path, st.Size(), maxFileSize)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// Parse reads the contents of a tokenizer.json file.
func Parse(data []byte) (*Tokenizer, error) {
	var f struct {
		AddedTokens   []addedToken    `json:"added_tokens"`
		Normalizer    json.RawMessage `json:"normalizer"`
		PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
		Model         json.RawMessage `json:"model"`
		PostProcessor json.RawMessage `json:"post_processor"`
		Decoder       json.RawMessage `json:"decoder"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t := &Tokenizer{}
	var err error
	if t.norm, err = parseNormalizer(f.Normalizer); err != nil {
		return nil, fmt.Errorf("tokenizer: normalizer: %w", err)
	}
	if t.pre, err = parsePreTokenizer(f.PreTokenizer); err != nil {
		return nil, fmt.Errorf("tokenizer: pre_tokenizer: %w", err)
	}
	if t.model, t.vocab, err = parseModel(f.Model); err != nil {
		return nil, fmt.Errorf("tokenizer: model: %w", err)
	}
	t.inv = make(map[int64]string, len(t.vocab)+len(f.AddedTokens))
	for tok, id := range t.vocab {
		t.inv[id] = tok
	}
	for _, a := range f.AddedTokens {
		if a.Content == "" {
			return nil, fmt.Errorf("tokenizer: added token %d has no content", a.ID)
		}
		t.inv[a.ID] = a.Content
		if _, ok := t.vocab[a.Content]; !ok {
			t.vocab[a.Content] = a.ID
		}
		t.added = append(t.added, a)
	}
	sort.SliceStable(t.added, func(i, j int) bool { return len(t.added[i].Content) > len(t.added[j].Content) })
	if t.post, err = parsePostProcessor(f.PostProcessor, t.vocab); err != nil {
		return nil, fmt.Errorf("tokenizer: post_processor: %w", err)
	}
	if t.dec, err = parseDecoder(f.Decoder); err != nil {
		return nil, fmt.Errorf("tokenizer: decoder: %w", err)
	}
	return t, nil
}

// VocabSize returns the number of distinct ids, added tokens included.
func (t *Tokenizer) VocabSize() int { return len(t.inv) }

// TokenToID returns the id of a token (Hugging Face's
// convert_tokens_to_ids), and whether the vocabulary has it.
func (t *Tokenizer) TokenToID(token string) (int64, bool) {
	id, ok := t.vocab[token]
	return id, ok
}

// IDToToken returns the token of an id (convert_ids_to_tokens), and
// whether the vocabulary has it.
func (t *Tokenizer) IDToToken(id int64) (string, bool) {
	s, ok := t.inv[id]
	return s, ok
}

// IsSpecial reports whether id is an added token marked special.
func (t *Tokenizer) IsSpecial(id int64) bool {
	for _, a := range t.added {
		if a.ID == id && a.Special {
			return true
		}
	}
	return false
}

// Tokenize returns the tokens of text without special tokens.
func (t *Tokenizer) Tokenize(text string) ([]string, error) {
	ids, err := t.EncodeOptions(text, false)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = t.inv[id]
	}
	return out, nil
}

// Encode returns the ids of text with the special tokens the
// post-processor adds (Hugging Face's encode with add_special_tokens=True,
// as Captum's LLM attribution calls it).
func (t *Tokenizer) Encode(text string) ([]int64, error) { return t.EncodeOptions(text, true) }

// EncodeOptions returns the ids of text, with the post-processor's special
// tokens when addSpecial is true.
func (t *Tokenizer) EncodeOptions(text string, addSpecial bool) ([]int64, error) {
	var ids []int64
	for k, seg := range t.splitAdded(text) {
		if seg.added != nil {
			ids = append(ids, seg.added.ID)
			continue
		}
		s := seg.text
		if t.norm != nil {
			var err error
			if s, err = t.norm(s); err != nil {
				return nil, fmt.Errorf("tokenizer: %w", err)
			}
		}
		if s == "" {
			continue
		}
		words := []string{s}
		if t.pre != nil {
			words = t.pre(s, k == 0)
		}
		for _, w := range words {
			if w == "" {
				continue
			}
			got, err := t.model.tokenize(w)
			if err != nil {
				return nil, fmt.Errorf("tokenizer: %w", err)
			}
			ids = append(ids, got...)
		}
	}
	if addSpecial && t.post != nil {
		ids = t.post(ids)
	}
	return ids, nil
}

// Decode turns ids back into text through the file's decoder (tokens
// joined by spaces when there is none); with skipSpecial, special added
// tokens are left out (Hugging Face's skip_special_tokens).
func (t *Tokenizer) Decode(ids []int64, skipSpecial bool) (string, error) {
	toks := make([]string, 0, len(ids))
	for _, id := range ids {
		s, ok := t.inv[id]
		if !ok {
			return "", fmt.Errorf("tokenizer: id %d is not in the vocabulary (%d ids)", id, len(t.inv))
		}
		if skipSpecial && t.IsSpecial(id) {
			continue
		}
		toks = append(toks, s)
	}
	if t.dec == nil {
		return strings.Join(toks, " "), nil
	}
	return strings.Join(t.dec(toks), ""), nil
}

// segment is a piece of the input: an added token or text between them.
type segment struct {
	text  string
	added *addedToken
}

// splitAdded cuts text at the added tokens (longest match first), honoring
// their lstrip, rstrip and single_word flags.
func (t *Tokenizer) splitAdded(text string) []segment {
	if len(t.added) == 0 {
		return []segment{{text: text}}
	}
	var out []segment
	start := 0
	for i := 0; i < len(text); {
		var hit *addedToken
		for k := range t.added {
			a := &t.added[k]
			if strings.HasPrefix(text[i:], a.Content) && (!a.SingleWord || wordBounded(text, i, i+len(a.Content))) {
				hit = a
				break
			}
		}
		if hit == nil {
			i++
			continue
		}
		before, end := text[start:i], i+len(hit.Content)
		if hit.LStrip {
			before = strings.TrimRight(before, " \t\n\r")
		}
		if hit.RStrip {
			for end < len(text) && strings.ContainsRune(" \t\n\r", rune(text[end])) {
				end++
			}
		}
		if before != "" {
			out = append(out, segment{text: before})
		}
		out = append(out, segment{added: hit})
		start, i = end, end
	}
	if start < len(text) {
		out = append(out, segment{text: text[start:]})
	}
	return out
}

// wordBounded reports whether text[i:j] is not inside a word.
func wordBounded(text string, i, j int) bool {
	isWord := func(b byte) bool {
		return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b >= 0x80
	}
	return (i == 0 || !isWord(text[i-1])) && (j == len(text) || !isWord(text[j]))
}

// kindOf returns the "type" field of a component.
func kindOf(raw json.RawMessage) (string, error) {
	var k struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(raw, &k); err != nil {
		return "", err
	}
	return k.Type, nil
}

// isNull reports whether a component is absent.
func isNull(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null"
}
