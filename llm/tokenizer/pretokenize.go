package tokenizer

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// normalizer rewrites text before it is split.
type normalizer func(string) (string, error)

// preTokenizer splits normalized text into words; first tells whether
// the text starts the input (Metaspace's prepend_scheme "first").
type preTokenizer func(s string, first bool) []string

func parseNormalizer(raw json.RawMessage) (normalizer, error) {
	if isNull(raw) {
		return nil, nil
	}
	kind, err := kindOf(raw)
	if err != nil {
		return nil, err
	}
	switch kind {
	case "Sequence":
		fs, err := parseSequence(raw, "normalizers", parseNormalizer, func(f normalizer) bool { return f != nil })
		if err != nil {
			return nil, err
		}
		return func(s string) (string, error) {
			for _, f := range fs {
				var err error
				if s, err = f(s); err != nil {
					return "", err
				}
			}
			return s, nil
		}, nil
	case "Lowercase":
		return func(s string) (string, error) { return strings.ToLower(s), nil }, nil
	case "NFC":
		return func(s string) (string, error) { return norm.NFC.String(s), nil }, nil
	case "NFD":
		return func(s string) (string, error) { return norm.NFD.String(s), nil }, nil
	case "NFKC":
		return func(s string) (string, error) { return norm.NFKC.String(s), nil }, nil
	case "NFKD":
		return func(s string) (string, error) { return norm.NFKD.String(s), nil }, nil
	case "StripAccents":
		return func(s string) (string, error) { return stripAccents(s), nil }, nil
	case "Strip":
		var c struct {
			Left  bool `json:"strip_left"`
			Right bool `json:"strip_right"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, err
		}
		return func(s string) (string, error) {
			if c.Left {
				s = strings.TrimLeftFunc(s, unicode.IsSpace)
			}
			if c.Right {
				s = strings.TrimRightFunc(s, unicode.IsSpace)
			}
			return s, nil
		}, nil
	case "Prepend":
		var c struct {
			Prepend string `json:"prepend"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, err
		}
		return func(s string) (string, error) {
			if s == "" {
				return s, nil
			}
			return c.Prepend + s, nil
		}, nil
	case "Replace":
		re, content, err := parsePattern(raw)
		if err != nil {
			return nil, err
		}
		return func(s string) (string, error) { return re.ReplaceAllLiteralString(s, content), nil }, nil
	case "BertNormalizer":
		var c struct {
			CleanText    *bool `json:"clean_text"`
			ChineseChars *bool `json:"handle_chinese_chars"`
			StripAccents *bool `json:"strip_accents"`
			Lowercase    *bool `json:"lowercase"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, err
		}
		on := func(b *bool) bool { return b == nil || *b }
		lower := on(c.Lowercase)
		strip := lower
		if c.StripAccents != nil {
			strip = *c.StripAccents
		}
		return func(s string) (string, error) {
			var b strings.Builder
			for _, r := range s {
				switch {
				case on(c.CleanText) && (r == 0 || r == 0xfffd || isControl(r)):
					continue
				case on(c.CleanText) && isWhitespace(r):
					b.WriteByte(' ')
				case on(c.ChineseChars) && isCJK(r):
					b.WriteByte(' ')
					b.WriteRune(r)
					b.WriteByte(' ')
				default:
					b.WriteRune(r)
				}
			}
			s = b.String()
			if strip {
				s = stripAccents(s)
			}
			if lower {
				s = strings.ToLower(s)
			}
			return s, nil
		}, nil
	}
	return nil, fmt.Errorf("normalizer %q is not supported", kind)
}

// stripAccents decomposes s (NFD) and drops the combining marks.
func stripAccents(s string) string {
	var b strings.Builder
	for _, r := range norm.NFD.String(s) {
		if !unicode.Is(unicode.Mn, r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isWhitespace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || unicode.Is(unicode.Zs, r)
}

func isControl(r rune) bool {
	if r == '\t' || r == '\n' || r == '\r' {
		return false
	}
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs)
}

func isCJK(r rune) bool {
	return r >= 0x4E00 && r <= 0x9FFF || r >= 0x3400 && r <= 0x4DBF || r >= 0x20000 && r <= 0x2A6DF ||
		r >= 0x2A700 && r <= 0x2B73F || r >= 0x2B740 && r <= 0x2B81F || r >= 0x2B820 && r <= 0x2CEAF ||
		r >= 0xF900 && r <= 0xFAFF || r >= 0x2F800 && r <= 0x2FA1F
}

// isBertPunct is BERT's punctuation: ASCII symbols and Unicode P*.
func isBertPunct(r rune) bool {
	if r >= 33 && r <= 47 || r >= 58 && r <= 64 || r >= 91 && r <= 96 || r >= 123 && r <= 126 {
		return true
	}
	return unicode.IsPunct(r)
}

// parsePattern reads a component's {"pattern": {"String"|"Regex": ...}}
// and its "content" (Replace).
func parsePattern(raw json.RawMessage) (*regexp.Regexp, string, error) {
	var c struct {
		Pattern struct {
			String *string `json:"String"`
			Regex  *string `json:"Regex"`
		} `json:"pattern"`
		Content string `json:"content"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, "", err
	}
	switch {
	case c.Pattern.String != nil:
		return regexp.MustCompile(regexp.QuoteMeta(*c.Pattern.String)), c.Content, nil
	case c.Pattern.Regex != nil:
		re, err := regexp.Compile(*c.Pattern.Regex)
		if err != nil {
			return nil, "", fmt.Errorf("pattern %q: Go's regexp cannot run it: %w", *c.Pattern.Regex, err)
		}
		return re, c.Content, nil
	}
	return nil, "", fmt.Errorf("pattern has neither String nor Regex")
}

// metaspace is the configuration the Metaspace pre-tokenizer and decoder
// share: Replacement stands for spaces; with Prepend, the pre-tokenizer
// puts it before words (before the first only, with OnlyFirst) and the
// decoder strips it from the first token; Split cuts words at it.
type metaspace struct {
	Replacement               string
	Prepend, OnlyFirst, Split bool
}

// parseMetaspace reads a Metaspace configuration (add_prefix_space, or
// prepend_scheme in newer files; defaults: "▁", prepend, split).
func parseMetaspace(raw json.RawMessage) (metaspace, error) {
	var c struct {
		Replacement    string  `json:"replacement"`
		AddPrefixSpace *bool   `json:"add_prefix_space"`
		PrependScheme  *string `json:"prepend_scheme"`
		Split          *bool   `json:"split"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return metaspace{}, err
	}
	m := metaspace{Replacement: c.Replacement, Prepend: c.AddPrefixSpace == nil || *c.AddPrefixSpace, Split: c.Split == nil || *c.Split}
	if m.Replacement == "" {
		m.Replacement = "▁"
	}
	if c.PrependScheme != nil {
		m.Prepend = *c.PrependScheme != "never"
		m.OnlyFirst = *c.PrependScheme == "first"
	}
	return m, nil
}

func parsePreTokenizer(raw json.RawMessage) (preTokenizer, error) {
	if isNull(raw) {
		return nil, nil
	}
	kind, err := kindOf(raw)
	if err != nil {
		return nil, err
	}
	switch kind {
	case "Sequence":
		fs, err := parseSequence(raw, "pretokenizers", parsePreTokenizer, func(f preTokenizer) bool { return f != nil })
		if err != nil {
			return nil, err
		}
		return func(s string, first bool) []string {
			words := []string{s}
			for _, f := range fs {
				var next []string
				for k, w := range words {
					next = append(next, f(w, first && k == 0)...)
				}
				words = next
			}
			return words
		}, nil
	case "ByteLevel":
		var c struct {
			AddPrefixSpace bool  `json:"add_prefix_space"`
			UseRegex       *bool `json:"use_regex"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, err
		}
		useRegex := c.UseRegex == nil || *c.UseRegex
		return func(s string, first bool) []string {
			if c.AddPrefixSpace && !strings.HasPrefix(s, " ") {
				s = " " + s
			}
			words := []string{s}
			if useRegex {
				words = gpt2Split(s)
			}
			for i, w := range words {
				words[i] = byteEncode(w)
			}
			return words
		}, nil
	case "Whitespace":
		re := regexp.MustCompile(`[\p{L}\p{N}\p{M}_]+|[^\p{L}\p{N}\p{M}_\s]+`)
		return func(s string, first bool) []string { return re.FindAllString(s, -1) }, nil
	case "WhitespaceSplit":
		return func(s string, _ bool) []string { return strings.Fields(s) }, nil
	case "BertPreTokenizer":
		return func(s string, first bool) []string {
			var out []string
			for _, w := range strings.FieldsFunc(s, isWhitespace) {
				out = append(out, splitIsolated(w, isBertPunct)...)
			}
			return out
		}, nil
	case "Punctuation":
		return func(s string, first bool) []string { return splitIsolated(s, isBertPunct) }, nil
	case "Digits":
		var c struct {
			Individual bool `json:"individual_digits"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, err
		}
		return func(s string, first bool) []string {
			if c.Individual {
				return splitIsolated(s, unicode.IsDigit)
			}
			return splitRuns(s, unicode.IsDigit)
		}, nil
	case "Metaspace":
		c, err := parseMetaspace(raw)
		if err != nil {
			return nil, err
		}
		prepend, onlyFirst, split := c.Prepend, c.OnlyFirst, c.Split
		return func(s string, first bool) []string {
			s = strings.ReplaceAll(s, " ", c.Replacement)
			if prepend && (first || !onlyFirst) && !strings.HasPrefix(s, c.Replacement) {
				s = c.Replacement + s
			}
			if !split {
				return []string{s}
			}
			var out []string
			for len(s) > 0 {
				k := strings.Index(s[len(c.Replacement):], c.Replacement)
				if !strings.HasPrefix(s, c.Replacement) {
					k = strings.Index(s, c.Replacement)
					if k < 0 {
						out = append(out, s)
						break
					}
					out = append(out, s[:k])
					s = s[k:]
					continue
				}
				if k < 0 {
					out = append(out, s)
					break
				}
				k += len(c.Replacement)
				out = append(out, s[:k])
				s = s[k:]
			}
			return out
		}, nil
	case "Split":
		var c struct {
			Pattern struct {
				String *string `json:"String"`
				Regex  *string `json:"Regex"`
			} `json:"pattern"`
			Behavior string `json:"behavior"`
			Invert   bool   `json:"invert"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, err
		}
		if c.Invert {
			return nil, fmt.Errorf("Split with invert is not supported")
		}
		switch c.Behavior {
		case "Isolated", "Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous":
		default:
			return nil, fmt.Errorf("Split behavior %q is not supported", c.Behavior)
		}
		var re matcher
		switch {
		case c.Pattern.String != nil:
			re = regexp.MustCompile(regexp.QuoteMeta(*c.Pattern.String))
		case c.Pattern.Regex != nil:
			var err error
			if re, err = compileSplit(*c.Pattern.Regex); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("Split pattern has neither String nor Regex")
		}
		return func(s string, first bool) []string { return splitRegex(s, re, c.Behavior) }, nil
	}
	return nil, fmt.Errorf("pre-tokenizer %q is not supported", kind)
}

// splitRegex splits s at the matches of re as the Split pre-tokenizer's
// behaviors do.
func splitRegex(s string, re matcher, behavior string) []string {
	var out []string
	last := 0
	pendingMerge := "" // a match waiting to be merged with the next piece
	for _, m := range re.FindAllStringIndex(s, -1) {
		if m[0] == m[1] {
			continue
		}
		gap := s[last:m[0]]
		match := s[m[0]:m[1]]
		switch behavior {
		case "Isolated":
			out = appendNonEmpty(out, gap, match)
		case "Removed":
			out = appendNonEmpty(out, gap)
		case "MergedWithPrevious":
			out = appendNonEmpty(out, gap+match)
		case "MergedWithNext":
			out = appendNonEmpty(out, pendingMerge+gap)
			pendingMerge = match
		case "Contiguous":
			if gap == "" && len(out) > 0 && m[0] == last && last > 0 && re.MatchString(out[len(out)-1]) {
				out[len(out)-1] += match
			} else {
				out = appendNonEmpty(out, gap, match)
			}
		}
		last = m[1]
	}
	out = appendNonEmpty(out, pendingMerge+s[last:])
	return out
}

func appendNonEmpty(out []string, ss ...string) []string {
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// splitIsolated splits s so that every rune for which is returns true is a
// word of its own.
func splitIsolated(s string, is func(rune) bool) []string {
	var out []string
	start := 0
	for i, r := range s {
		if is(r) {
			out = appendNonEmpty(out, s[start:i], string(r))
			start = i + len(string(r))
		}
	}
	return appendNonEmpty(out, s[start:])
}

// splitRuns splits s into runs of runes for which is is true and runs for
// which it is false.
func splitRuns(s string, is func(rune) bool) []string {
	var out []string
	start, prev := 0, false
	for i, r := range s {
		c := is(r)
		if i > 0 && c != prev {
			out = append(out, s[start:i])
			start = i
		}
		prev = c
	}
	return appendNonEmpty(out, s[start:])
}

// gpt2Split splits text as GPT-2's pattern
// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// does (Go's regexp has no lookahead, so the pattern is written out).
func gpt2Split(text string) []string {
	r := []rune(text)
	n := len(r)
	var out []string
	class := func(c rune) int {
		switch {
		case unicode.IsLetter(c):
			return 1
		case unicode.IsNumber(c):
			return 2
		case unicode.IsSpace(c):
			return 0
		}
		return 3
	}
	run := func(i, cl int) int {
		for i < n && class(r[i]) == cl {
			i++
		}
		return i
	}
	for i := 0; i < n; {
		if r[i] == '\'' && i+1 < n {
			if i+2 < n {
				two := string(r[i+1 : i+3])
				if two == "re" || two == "ve" || two == "ll" {
					out = append(out, string(r[i:i+3]))
					i += 3
					continue
				}
			}
			switch r[i+1] {
			case 's', 't', 'm', 'd':
				out = append(out, string(r[i:i+2]))
				i += 2
				continue
			}
		}
		start := i
		if r[i] == ' ' && i+1 < n && class(r[i+1]) != 0 {
			i++
		}
		if cl := class(r[i]); cl != 0 {
			j := run(i, cl)
			out = append(out, string(r[start:j]))
			i = j
			continue
		}
		// whitespace: all of it at the end of the text, else all but the
		// last character when there are several (\s+(?!\S)), else the one.
		j := run(i, 0)
		switch {
		case j == n:
		case j-i > 1:
			j--
		}
		out = append(out, string(r[i:j]))
		i = j
	}
	return out
}

// byteChars maps each byte to the printable rune GPT-2's byte-level
// alphabet gives it; byteOf is its inverse.
var byteChars, byteOf = func() ([256]rune, map[rune]byte) {
	var m [256]rune
	inv := map[rune]byte{}
	next := rune(256)
	for b := 0; b < 256; b++ {
		if b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE && b <= 0xFF {
			m[b] = rune(b)
		} else {
			m[b] = next
			next++
		}
		inv[m[b]] = byte(b)
	}
	return m, inv
}()

// byteEncode maps the bytes of s to GPT-2's byte-level alphabet.
func byteEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteRune(byteChars[s[i]])
	}
	return b.String()
}

// matcher finds the matches of a Split pattern.
type matcher interface {
	FindAllStringIndex(s string, n int) [][]int
	MatchString(s string) bool
}

// lookaheadWS is the one lookahead of common pre-tokenizer patterns
// (GPT-2's, GPT-4's, Llama 3's, Qwen's): whitespace not followed by a
// non-space.
const lookaheadWS = `\s+(?!\S)`

// compileSplit compiles a Split pattern. Go's regexp has no lookahead; a
// pattern whose only lookahead is the alternative \s+(?!\S) is run as
// the alternatives before it, that one written out, and those after it,
// tried in order at each position (leftmost-first, as Oniguruma does).
func compileSplit(pattern string) (matcher, error) {
	re, err := regexp.Compile(pattern)
	if err == nil {
		return re, nil
	}
	alts := topLevelAlternatives(pattern)
	k := slices.Index(alts, lookaheadWS)
	if k < 0 {
		return nil, fmt.Errorf("Split pattern %q: Go's regexp cannot run it: %w", pattern, err)
	}
	m := &lookaheadMatcher{}
	for i, part := range [][]string{alts[:k], alts[k+1:]} {
		if len(part) == 0 {
			continue
		}
		r, err := regexp.Compile(`^(?:` + strings.Join(part, "|") + `)`)
		if err != nil {
			return nil, fmt.Errorf("Split pattern %q: Go's regexp cannot run it: %w", pattern, err)
		}
		if i == 0 {
			m.before = r
		} else {
			m.after = r
		}
	}
	return m, nil
}

// topLevelAlternatives splits a pattern at the | outside groups and
// character classes.
func topLevelAlternatives(p string) []string {
	var out []string
	depth, start := 0, 0
	inClass := false
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '\\':
			i++
		case inClass:
			if c == ']' {
				inClass = false
			}
		case c == '[':
			inClass = true
			if i+1 < len(p) && p[i+1] == '^' {
				i++
			}
			if i+1 < len(p) && p[i+1] == ']' {
				i++
			}
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == '|' && depth == 0:
			out = append(out, p[start:i])
			start = i + 1
		}
	}
	return append(out, p[start:])
}

// lookaheadMatcher runs before | \s+(?!\S) | after.
type lookaheadMatcher struct {
	before, after *regexp.Regexp
}

// at returns the end of the match at i, or -1.
func (m *lookaheadMatcher) at(s string, i int) int {
	if m.before != nil {
		if loc := m.before.FindStringIndex(s[i:]); loc != nil && loc[1] > 0 {
			return i + loc[1]
		}
	}
	// \s+(?!\S): the whole run of white space at the end of the text,
	// else all of it but its last character (which must then be white
	// space too, so the run needs two).
	j, last := i, i
	for j < len(s) {
		r, size := utf8.DecodeRuneInString(s[j:])
		if !unicode.IsSpace(r) {
			break
		}
		last = j
		j += size
	}
	if j > i {
		if j == len(s) {
			return j
		}
		if last > i {
			return last
		}
	}
	if m.after != nil {
		if loc := m.after.FindStringIndex(s[i:]); loc != nil && loc[1] > 0 {
			return i + loc[1]
		}
	}
	return -1
}

// FindAllStringIndex returns the successive non-overlapping matches.
func (m *lookaheadMatcher) FindAllStringIndex(s string, n int) [][]int {
	var out [][]int
	for i := 0; i < len(s) && (n < 0 || len(out) < n); {
		if e := m.at(s, i); e > i {
			out = append(out, []int{i, e})
			i = e
			continue
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return out
}

// MatchString reports whether s has a match.
func (m *lookaheadMatcher) MatchString(s string) bool { return len(m.FindAllStringIndex(s, 1)) > 0 }

// parseSequence reads the components a Sequence lists under field, each
// with parse, and keeps those keep accepts (components that do nothing
// parse to nil).
func parseSequence[T any](raw json.RawMessage, field string, parse func(json.RawMessage) (T, error), keep func(T) bool) ([]T, error) {
	var s map[string]json.RawMessage
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	v, ok := s[field]
	if !ok { // encoding/json matches struct fields without case too
		for k, kv := range s {
			if strings.EqualFold(k, field) {
				v, ok = kv, true
				break
			}
		}
	}
	var list []json.RawMessage
	if ok {
		if err := json.Unmarshal(v, &list); err != nil {
			return nil, err
		}
	}
	var out []T
	for _, r := range list {
		f, err := parse(r)
		if err != nil {
			return nil, err
		}
		if keep(f) {
			out = append(out, f)
		}
	}
	return out, nil
}
