package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestAgainstHuggingFace checks ids and decoded text against what Hugging
// Face's tokenizers.js gives for the same tokenizer.json files
// (testdata/expected.json, written by testdata/reference.mjs).
func TestAgainstHuggingFace(t *testing.T) {
	b, err := os.ReadFile("testdata/expected.json")
	if err != nil {
		t.Fatal(err)
	}
	var exp map[string][]struct {
		Text         string  `json:"text"`
		IDs          []int64 `json:"ids"`
		IDsNoSpecial []int64 `json:"ids_no_special"`
		Decoded      string  `json:"decoded"`
	}
	if err := json.Unmarshal(b, &exp); err != nil {
		t.Fatal(err)
	}
	if len(exp) != 6 {
		t.Fatalf("expected.json has %d tokenizers, want 6", len(exp))
	}
	for name, cases := range exp {
		tok, err := Load(filepath.Join("testdata", name+".json"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, c := range cases {
			got, err := tok.Encode(c.Text)
			if err != nil {
				t.Errorf("%s %q: %v", name, c.Text, err)
				continue
			}
			if !slices.Equal(got, c.IDs) {
				t.Errorf("%s: Encode(%q) = %v, want %v", name, c.Text, got, c.IDs)
			}
			plain, err := tok.EncodeOptions(c.Text, false)
			if err != nil || !slices.Equal(plain, c.IDsNoSpecial) {
				t.Errorf("%s: EncodeOptions(%q, false) = %v, %v, want %v", name, c.Text, plain, err, c.IDsNoSpecial)
			}
			dec, err := tok.Decode(got, true)
			if err != nil || dec != c.Decoded {
				t.Errorf("%s: Decode(%v) = %q, %v, want %q", name, got, dec, err, c.Decoded)
			}
		}
	}
}

// TestHandDerived checks a few byte-level BPE encodings derived by hand
// from the merges of testdata/bytelevel_bpe.json, independently of any
// other implementation.
func TestHandDerived(t *testing.T) {
	tok, err := Load("testdata/bytelevel_bpe.json")
	if err != nil {
		t.Fatal(err)
	}
	// "the": merges "h e" (rank 0) then "t he" (rank 1) give one token.
	// " cat": "a t" (2), "c at" (7), "Ġ cat" (11) give "Ġcat".
	toks, err := tok.Tokenize("the cat")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"the", "Ġcat"}; !slices.Equal(toks, want) {
		t.Errorf("Tokenize(the cat) = %q, want %q", toks, want)
	}
	// A byte with no merge stays its own byte-level character: "é" is
	// bytes C3 A9, shown as "Ã" and "©".
	toks, err = tok.Tokenize("é")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"Ã", "©"}; !slices.Equal(toks, want) {
		t.Errorf("Tokenize(é) = %q, want %q", toks, want)
	}
	// The oracle's word tokenizer: unknown words are <unk> = 0, <s> = 1
	// comes first, decoding joins with spaces (tokenizers.js gives no id
	// for unknown WordLevel words, so this case is derived by hand).
	wl, err := Load("testdata/word_level.json")
	if err != nil {
		t.Fatal(err)
	}
	ids, err := wl.Encode("zebra  the dog")
	if err != nil || !slices.Equal(ids, []int64{1, 0, 2, 4}) {
		t.Errorf("word_level Encode(zebra  the dog) = %v, %v, want [1 0 2 4]", ids, err)
	}
	if s, err := wl.Decode(ids, true); err != nil || s != "<unk> the dog" {
		t.Errorf("word_level Decode(%v) = %q, %v, want %q", ids, s, err, "<unk> the dog")
	}
	id, ok := tok.TokenToID("Ġcat")
	if s, ok2 := tok.IDToToken(id); !ok || !ok2 || s != "Ġcat" {
		t.Errorf("TokenToID/IDToToken round trip of Ġcat: %d %v %q %v", id, ok, s, ok2)
	}
}

// TestGPT2Split checks the hand-written GPT-2 pattern on the cases its
// lookahead decides.
func TestGPT2Split(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"a  b", []string{"a", " ", " b"}},
		{"a \n b", []string{"a", " \n", " b"}},
		{"x   ", []string{"x", "   "}},
		{"it's they'll", []string{"it", "'s", " they", "'ll"}},
		{"n=42!?", []string{"n", "=", "42", "!?"}},
		{"\nx", []string{"\n", "x"}},
	} {
		if got := gpt2Split(c.in); !slices.Equal(got, c.want) {
			t.Errorf("gpt2Split(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestErrors checks that unsupported or broken files are refused by name.
func TestErrors(t *testing.T) {
	for _, c := range []struct {
		json, want string
	}{
		{`{`, "tokenizer"},
		{`{"model": null}`, "no model"},
		{`{"model": {"type": "Unigram", "vocab": [["a", 0.0]]}}`, "Unigram"},
		{`{"model": {"type": "WordLevel", "vocab": {"a": 0}}, "normalizer": {"type": "Precompiled"}}`, "Precompiled"},
		{`{"model": {"type": "WordLevel", "vocab": {"a": 0}}, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "a(?=b)"}, "behavior": "Isolated"}}`, "regexp"},
		{`{"model": {"type": "WordLevel", "vocab": {"a": 0}, "unk_token": "<unk>"}}`, "unk_token"},
		{`{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b c"]}}`, "merge 0"},
	} {
		_, err := Parse([]byte(c.json))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%s) = %v, want an error mentioning %q", c.json, err, c.want)
		}
	}
	tok, err := Load("testdata/word_level.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tok.Decode([]int64{999}, false); err == nil {
		t.Error("Decode of an id outside the vocabulary gave no error")
	}
	if _, err := Load("testdata/missing.json"); err == nil {
		t.Error("Load of a missing file gave no error")
	}
}

func readTestFile(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join("testdata", name+".json"))
}
