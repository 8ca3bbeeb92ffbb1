package tokenizer

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// naiveMerge is BPE written the slow, obvious way: merge the lowest-rank
// pair (leftmost on ties) until none is left.
func naiveMerge(m *bpe, syms []string) []string {
	for {
		best, bestRank := -1, 0
		for i := 0; i+1 < len(syms); i++ {
			if r, ok := m.ranks[[2]string{syms[i], syms[i+1]}]; ok && (best < 0 || r < bestRank) {
				best, bestRank = i, r
			}
		}
		if best < 0 {
			return syms
		}
		syms[best] += syms[best+1]
		syms = append(syms[:best+1], syms[best+2:]...)
	}
}

// TestBPEHeapMatchesNaive checks the heap-ordered merges against the
// obvious loop on random words over the Llama-style file's alphabet.
func TestBPEHeapMatchesNaive(t *testing.T) {
	tok, err := Load("testdata/metaspace_bpe.json")
	if err != nil {
		t.Fatal(err)
	}
	m := tok.model.(*bpe)
	alphabet := []string{"▁", "t", "h", "e", "c", "a", "s", "o", "n", "m", "l", "w", "r", "d"}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		var syms []string
		for range 1 + rng.IntN(30) {
			syms = append(syms, alphabet[rng.IntN(len(alphabet))])
		}
		word := strings.Join(syms, "")
		ids, err := m.tokenize(word)
		if err != nil {
			t.Fatal(err)
		}
		want := naiveMerge(m, slices.Clone(syms))
		got := make([]string, len(ids))
		for i, id := range ids {
			got[i] = tok.inv[id]
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%q: heap merges %q, naive %q", word, got, want)
		}
	}
}

// TestBPELongWord checks that a long text that is one word (Llama's
// tokenizers do not pre-split) is tokenized quickly.
func TestBPELongWord(t *testing.T) {
	tok, err := Load("testdata/metaspace_bpe.json")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Repeat("the cat sat on the mat ", 2000)
	start := time.Now()
	ids, err := tok.Encode(text)
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("46000 characters took %v", el)
	}
	// <s>, then "▁the ▁cat ▁sat ▁on ▁the ▁mat" per repeat, and the
	// trailing "▁" alone.
	if want := 1 + 6*2000 + 1; len(ids) != want {
		t.Errorf("%d ids, want %d", len(ids), want)
	}
}

// FuzzParseEncode checks that no tokenizer file or text makes Parse,
// Encode or Decode panic.
func FuzzParseEncode(f *testing.F) {
	for _, name := range []string{"bytelevel_bpe", "wordpiece", "metaspace_bpe", "word_level"} {
		b, err := readTestFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "the cat sat on the mat. héllo ☃ <s>[CLS]")
	}
	f.Fuzz(func(t *testing.T, file []byte, text string) {
		tok, err := Parse(file)
		if err != nil {
			return
		}
		ids, err := tok.Encode(text)
		if err != nil {
			return
		}
		_, _ = tok.Decode(ids, true)
	})
}

// TestLookaheadSplit checks Llama 3's pre-tokenizer pattern, whose
// \s+(?!\S) Go's regexp cannot run, on pieces derived by hand from
// Oniguruma's leftmost-first, backtracking semantics.
func TestLookaheadSplit(t *testing.T) {
	const llama3 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	m, err := compileSplit(llama3)
	if err != nil {
		t.Fatal(err)
	}
	got := splitRegex("DON'T stop  now\n\n x 12345!?   ", m, "Isolated")
	want := []string{"DON", "'T", " stop", " ", " now", "\n\n", " x", " ", "123", "45", "!?", "   "}
	if !slices.Equal(got, want) {
		t.Errorf("split %q, want %q", got, want)
	}
	if _, err := compileSplit(`a(?=b)|\s+(?!\S)`); err == nil {
		t.Error("a second lookahead was accepted")
	}
}
