package tokenizer

import (
	"container/heap"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// model turns one pre-tokenized word into ids.
type model interface {
	tokenize(word string) ([]int64, error)
}

func parseModel(raw json.RawMessage) (model, map[string]int64, error) {
	if isNull(raw) {
		return nil, nil, fmt.Errorf("the file has no model")
	}
	var c struct {
		Type         string          `json:"type"`
		Vocab        json.RawMessage `json:"vocab"`
		Merges       json.RawMessage `json:"merges"`
		Unk          *string         `json:"unk_token"`
		Prefix       *string         `json:"continuing_subword_prefix"`
		Suffix       *string         `json:"end_of_word_suffix"`
		FuseUnk      bool            `json:"fuse_unk"`
		ByteFallback bool            `json:"byte_fallback"`
		IgnoreMerges bool            `json:"ignore_merges"`
		MaxChars     *int            `json:"max_input_chars_per_word"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, nil, err
	}
	if c.Type == "" {
		// Older files have no type; BPE has merges, WordPiece a prefix.
		switch {
		case len(c.Merges) > 0:
			c.Type = "BPE"
		case c.Prefix != nil:
			c.Type = "WordPiece"
		default:
			c.Type = "WordLevel"
		}
	}
	vocab := map[string]int64{}
	if err := json.Unmarshal(c.Vocab, &vocab); err != nil {
		return nil, nil, fmt.Errorf("%s vocab: %w (Unigram models are not supported)", c.Type, err)
	}
	if len(vocab) == 0 {
		return nil, nil, fmt.Errorf("%s model has an empty vocab", c.Type)
	}
	str := func(p *string, def string) string {
		if p == nil {
			return def
		}
		return *p
	}
	unk := str(c.Unk, "")
	if unk != "" {
		if _, ok := vocab[unk]; !ok {
			return nil, nil, fmt.Errorf("unk_token %q is not in the vocab", unk)
		}
	}
	switch c.Type {
	case "WordLevel":
		return &wordLevel{vocab: vocab, unk: unk}, vocab, nil
	case "WordPiece":
		maxChars := 100
		if c.MaxChars != nil {
			maxChars = *c.MaxChars
		}
		return &wordPiece{vocab: vocab, unk: unk, prefix: str(c.Prefix, "##"), maxChars: maxChars}, vocab, nil
	case "BPE":
		b := &bpe{vocab: vocab, unk: unk, prefix: str(c.Prefix, ""), suffix: str(c.Suffix, ""),
			fuseUnk: c.FuseUnk, byteFallback: c.ByteFallback, ignoreMerges: c.IgnoreMerges, ranks: map[[2]string]int{}}
		var pairs [][2]string
		var asStrings []string
		if err := json.Unmarshal(c.Merges, &asStrings); err == nil {
			for i, m := range asStrings {
				a, bb, ok := strings.Cut(m, " ")
				if !ok || strings.Contains(bb, " ") {
					return nil, nil, fmt.Errorf("merge %d %q is not two tokens", i, m)
				}
				pairs = append(pairs, [2]string{a, bb})
			}
		} else if err := json.Unmarshal(c.Merges, &pairs); err != nil {
			return nil, nil, fmt.Errorf("merges: %w", err)
		}
		for i, p := range pairs {
			if _, ok := b.ranks[p]; !ok {
				b.ranks[p] = i
			}
		}
		return b, vocab, nil
	}
	return nil, nil, fmt.Errorf("model %q is not supported", c.Type)
}

// wordLevel maps whole words to ids.
type wordLevel struct {
	vocab map[string]int64
	unk   string
}

func (m *wordLevel) tokenize(w string) ([]int64, error) {
	if id, ok := m.vocab[w]; ok {
		return []int64{id}, nil
	}
	if m.unk == "" {
		return nil, fmt.Errorf("WordLevel: %q is not in the vocab and there is no unk_token", w)
	}
	return []int64{m.vocab[m.unk]}, nil
}

// wordPiece is BERT's greedy longest-match-first subword split.
type wordPiece struct {
	vocab    map[string]int64
	unk      string
	prefix   string
	maxChars int
}

func (m *wordPiece) unkID(w string) ([]int64, error) {
	if m.unk == "" {
		return nil, fmt.Errorf("WordPiece: %q cannot be split and there is no unk_token", w)
	}
	return []int64{m.vocab[m.unk]}, nil
}

func (m *wordPiece) tokenize(w string) ([]int64, error) {
	if utf8.RuneCountInString(w) > m.maxChars {
		return m.unkID(w)
	}
	var ids []int64
	for start := 0; start < len(w); {
		end := len(w)
		found := false
		for end > start {
			sub := w[start:end]
			if start > 0 {
				sub = m.prefix + sub
			}
			if id, ok := m.vocab[sub]; ok {
				ids = append(ids, id)
				found = true
				break
			}
			_, size := utf8.DecodeLastRuneInString(w[start:end])
			end -= size
		}
		if !found {
			return m.unkID(w)
		}
		start = end
	}
	return ids, nil
}

// bpe is byte-pair encoding: a word starts as characters and the pair of
// neighbours with the lowest merge rank is joined until none is left.
type bpe struct {
	vocab        map[string]int64
	ranks        map[[2]string]int
	unk          string
	prefix       string
	suffix       string
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool
}

func (m *bpe) tokenize(w string) ([]int64, error) {
	if m.ignoreMerges {
		if id, ok := m.vocab[w]; ok {
			return []int64{id}, nil
		}
	}
	// The initial symbols: one per character, with the prefix on all but
	// the first and the suffix on the last.
	type sym struct {
		s   string
		unk bool // not in the vocab
	}
	var syms []sym
	n := utf8.RuneCountInString(w)
	k := 0
	for _, r := range w {
		s := string(r)
		if k > 0 {
			s = m.prefix + s
		}
		if k == n-1 {
			s += m.suffix
		}
		k++
		if _, ok := m.vocab[s]; ok {
			syms = append(syms, sym{s: s})
			continue
		}
		if m.byteFallback {
			all := true
			var bs []sym
			for _, b := range []byte(string(r)) {
				t := fmt.Sprintf("<0x%02X>", b)
				if _, ok := m.vocab[t]; !ok {
					all = false
					break
				}
				bs = append(bs, sym{s: t})
			}
			if all {
				syms = append(syms, bs...)
				continue
			}
		}
		if m.unk == "" {
			// Hugging Face drops characters it cannot represent when
			// there is no unknown token.
			continue
		}
		if m.fuseUnk && len(syms) > 0 && syms[len(syms)-1].unk {
			continue
		}
		syms = append(syms, sym{s: s, unk: true})
	}
	// Merge the pair of neighbours with the lowest rank, the leftmost
	// first, until none is left: a heap of candidate pairs over a linked
	// list of symbols, stale entries skipped when popped (Hugging Face's
	// order, in O(n log n) for words of n characters: Llama's tokenizers
	// make the whole text one word).
	n = len(syms)
	next, prev := make([]int, n), make([]int, n)
	for i := range syms {
		next[i], prev[i] = i+1, i-1
	}
	alive := make([]bool, n)
	for i := range alive {
		alive[i] = true
	}
	h := &pairHeap{}
	push := func(i int) {
		if i < 0 || next[i] >= n {
			return
		}
		j := next[i]
		if syms[i].unk || syms[j].unk {
			return
		}
		if r, ok := m.ranks[[2]string{syms[i].s, syms[j].s}]; ok {
			heap.Push(h, pairItem{rank: r, pos: i, left: syms[i].s, right: syms[j].s})
		}
	}
	for i := 0; i+1 < n; i++ {
		push(i)
	}
	for h.Len() > 0 {
		it := heap.Pop(h).(pairItem)
		i := it.pos
		j := next[i]
		if !alive[i] || j >= n || syms[i].s != it.left || syms[j].s != it.right {
			continue
		}
		joined := it.left + strings.TrimPrefix(it.right, m.prefix)
		if _, ok := m.vocab[joined]; !ok {
			return nil, fmt.Errorf("BPE: merge %q + %q gives %q, which is not in the vocab", it.left, it.right, joined)
		}
		syms[i] = sym{s: joined}
		alive[j] = false
		next[i] = next[j]
		if next[j] < n {
			prev[next[j]] = i
		}
		push(prev[i])
		push(i)
	}
	kept := syms[:0]
	for i := 0; i < n; i = next[i] {
		kept = append(kept, syms[i])
	}
	syms = kept
	ids := make([]int64, len(syms))
	for i, s := range syms {
		if s.unk {
			ids[i] = m.vocab[m.unk]
		} else {
			ids[i] = m.vocab[s.s]
		}
	}
	return ids, nil
}

// pairItem is a candidate merge: the pair starting at symbol pos.
type pairItem struct {
	rank, pos   int
	left, right string
}

// pairHeap orders candidate merges by rank, then position.
type pairHeap []pairItem

func (h pairHeap) Len() int { return len(h) }
func (h pairHeap) Less(a, b int) bool {
	return h[a].rank < h[b].rank || h[a].rank == h[b].rank && h[a].pos < h[b].pos
}
func (h pairHeap) Swap(a, b int) { h[a], h[b] = h[b], h[a] }
func (h *pairHeap) Push(x any)   { *h = append(*h, x.(pairItem)) }
func (h *pairHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// postProcessor adds special tokens around one sequence.
type postProcessor func(ids []int64) []int64

func parsePostProcessor(raw json.RawMessage, vocab map[string]int64) (postProcessor, error) {
	if isNull(raw) {
		return nil, nil
	}
	kind, err := kindOf(raw)
	if err != nil {
		return nil, err
	}
	wrap := func(before, after []int64) postProcessor {
		return func(ids []int64) []int64 {
			out := make([]int64, 0, len(before)+len(ids)+len(after))
			out = append(out, before...)
			out = append(out, ids...)
			return append(out, after...)
		}
	}
	switch kind {
	case "ByteLevel":
		return nil, nil
	case "Sequence":
		fs, err := parseSequence(raw, "processors", func(r json.RawMessage) (postProcessor, error) { return parsePostProcessor(r, vocab) }, func(f postProcessor) bool { return f != nil })
		if err != nil {
			return nil, err
		}
		return func(ids []int64) []int64 {
			for _, f := range fs {
				ids = f(ids)
			}
			return ids
		}, nil
	case "BertProcessing", "RobertaProcessing":
		var c struct {
			Sep [2]json.RawMessage `json:"sep"`
			Cls [2]json.RawMessage `json:"cls"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, err
		}
		var sep, cls int64
		if err := json.Unmarshal(c.Sep[1], &sep); err != nil {
			return nil, fmt.Errorf("%s sep: %w", kind, err)
		}
		if err := json.Unmarshal(c.Cls[1], &cls); err != nil {
			return nil, fmt.Errorf("%s cls: %w", kind, err)
		}
		return wrap([]int64{cls}, []int64{sep}), nil
	case "TemplateProcessing":
		var c struct {
			Single []struct {
				Special *struct {
					ID string `json:"id"`
				} `json:"SpecialToken"`
				Sequence *struct {
					ID string `json:"id"`
				} `json:"Sequence"`
			} `json:"single"`
			Specials map[string]struct {
				IDs []int64 `json:"ids"`
			} `json:"special_tokens"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, err
		}
		var before, after []int64
		seen := false
		for _, p := range c.Single {
			switch {
			case p.Sequence != nil:
				if seen {
					return nil, fmt.Errorf("TemplateProcessing: the single template has the sequence twice")
				}
				seen = true
			case p.Special != nil:
				st, ok := c.Specials[p.Special.ID]
				if !ok {
					return nil, fmt.Errorf("TemplateProcessing: special token %q is not in special_tokens", p.Special.ID)
				}
				if seen {
					after = append(after, st.IDs...)
				} else {
					before = append(before, st.IDs...)
				}
			}
		}
		if !seen {
			return nil, fmt.Errorf("TemplateProcessing: the single template has no sequence")
		}
		return wrap(before, after), nil
	}
	return nil, fmt.Errorf("post-processor %q is not supported", kind)
}

// decoder turns tokens back into pieces of text.
type decoder func(tokens []string) []string

func parseDecoder(raw json.RawMessage) (decoder, error) {
	if isNull(raw) {
		return nil, nil
	}
	kind, err := kindOf(raw)
	if err != nil {
		return nil, err
	}
	switch kind {
	case "Sequence":
		fs, err := parseSequence(raw, "decoders", parseDecoder, func(f decoder) bool { return f != nil })
		if err != nil {
			return nil, err
		}
		return func(t []string) []string {
			for _, f := range fs {
				t = f(t)
			}
			return t
		}, nil
	case "ByteLevel":
		return func(t []string) []string {
			var b []byte
			for _, s := range t {
				for _, r := range s {
					if c, ok := byteOf[r]; ok {
						b = append(b, c)
					} else {
						b = utf8.AppendRune(b, r)
					}
				}
			}
			return []string{strings.ToValidUTF8(string(b), "\uFFFD")}
		}, nil
	case "WordPiece":
		var c struct {
			Prefix  string `json:"prefix"`
			Cleanup *bool  `json:"cleanup"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, err
		}
		if c.Prefix == "" {
			c.Prefix = "##"
		}
		return func(t []string) []string {
			var b strings.Builder
			for i, s := range t {
				if i > 0 {
					if strings.HasPrefix(s, c.Prefix) {
						s = strings.TrimPrefix(s, c.Prefix)
					} else {
						b.WriteByte(' ')
					}
				}
				b.WriteString(s)
			}
			// The cleanup runs on the joined text, as transformers'
			// clean_up_tokenization does.
			if c.Cleanup == nil || *c.Cleanup {
				return []string{cleanup(b.String())}
			}
			return []string{b.String()}
		}, nil
	case "Metaspace":
		c, err := parseMetaspace(raw)
		if err != nil {
			return nil, err
		}
		strip := c.Prepend
		return func(t []string) []string {
			out := make([]string, len(t))
			for i, s := range t {
				s = strings.ReplaceAll(s, c.Replacement, " ")
				if i == 0 && strip {
					s = strings.TrimPrefix(s, " ")
				}
				out[i] = s
			}
			return out
		}, nil
	case "BPEDecoder":
		var c struct {
			Suffix string `json:"suffix"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, err
		}
		if c.Suffix == "" {
			c.Suffix = "</w>"
		}
		return func(t []string) []string {
			out := make([]string, len(t))
			for i, s := range t {
				rep := " "
				if i == len(t)-1 {
					rep = ""
				}
				out[i] = strings.ReplaceAll(s, c.Suffix, rep)
			}
			return out
		}, nil
	case "Replace":
		re, content, err := parsePattern(raw)
		if err != nil {
			return nil, err
		}
		return func(t []string) []string {
			out := make([]string, len(t))
			for i, s := range t {
				out[i] = re.ReplaceAllLiteralString(s, content)
			}
			return out
		}, nil
	case "Fuse":
		return func(t []string) []string { return []string{strings.Join(t, "")} }, nil
	case "Strip":
		var c struct {
			Content string `json:"content"`
			Start   int    `json:"start"`
			Stop    int    `json:"stop"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, err
		}
		if c.Content == "" {
			return func(t []string) []string { return t }, nil
		}
		return func(t []string) []string {
			out := make([]string, len(t))
			for i, s := range t {
				for k := 0; k < c.Start && strings.HasPrefix(s, c.Content); k++ {
					s = strings.TrimPrefix(s, c.Content)
				}
				for k := 0; k < c.Stop && strings.HasSuffix(s, c.Content); k++ {
					s = strings.TrimSuffix(s, c.Content)
				}
				out[i] = s
			}
			return out
		}, nil
	case "ByteFallback":
		return func(t []string) []string {
			var out []string
			var pending []byte
			flush := func() {
				if pending != nil {
					out = append(out, strings.ToValidUTF8(string(pending), "\uFFFD"))
					pending = nil
				}
			}
			for _, s := range t {
				var b byte
				if len(s) == 6 && strings.HasPrefix(s, "<0x") && strings.HasSuffix(s, ">") {
					if _, err := fmt.Sscanf(s, "<0x%02X>", &b); err == nil {
						pending = append(pending, b)
						continue
					}
				}
				flush()
				out = append(out, s)
			}
			flush()
			return out
		}, nil
	}
	return nil, fmt.Errorf("decoder %q is not supported", kind)
}

// cleanup removes the spaces the WordPiece decoder puts before
// punctuation and contractions (Hugging Face's clean_up_tokenization).
func cleanup(s string) string {
	r := strings.NewReplacer(" .", ".", " ?", "?", " !", "!", " ,", ",", " ' ", "'",
		" n't", "n't", " 'm", "'m", " 's", "'s", " 've", "'ve", " 're", "'re")
	return r.Replace(s)
}
