package llm

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Tokenizer is what attribution needs of a tokenizer; a
// *tokenizer.Tokenizer (package llm/tokenizer, Hugging Face's
// tokenizer.json) is one.
type Tokenizer interface {
	// Encode returns the ids of text with the special tokens the
	// tokenizer adds (add_special_tokens=True).
	Encode(text string) ([]int64, error)
	// Decode returns the text of ids.
	Decode(ids []int64, skipSpecial bool) (string, error)
	// TokenToID and IDToToken are convert_tokens_to_ids and
	// convert_ids_to_tokens for one token.
	TokenToID(token string) (int64, bool)
	IDToToken(id int64) (string, bool)
}

// InterpretableInput is a prompt whose interpretable features (words,
// phrases, tokens) can each be present or absent: Captum's
// InterpretableInput. TextTemplateInput and TextTokenInput are the two
// kinds.
type InterpretableInput interface {
	// NumFeatures is the number of interpretable features
	// (n_itp_features).
	NumFeatures(tok Tokenizer) (int, error)
	// Tokens returns the token ids of the prompt with feature i present
	// when on[i] is true, absent (its baseline) otherwise
	// (to_model_input); nil on means all present.
	Tokens(tok Tokenizer, on []bool) ([]int64, error)
	// FeatureNames names the features as the result reports them
	// (Captum's values, LLMAttributionResult.input_tokens): one per value
	// of a template, one per interpretable token.
	FeatureNames(tok Tokenizer) ([]string, error)
	// FormatAttr maps attributions of the interpretable features
	// [rows, NumFeatures] to one per value (format_attr).
	FormatAttr(a [][]float64) [][]float64
}

// TextTemplateInput is a prompt made by filling a template with values,
// each value a feature (Captum's TextTemplateInput): an absent feature's
// value is replaced by its baseline string and the filled text is tokenized
// again, so the number of tokens may change.
type TextTemplateInput struct {
	// Template is filled as Python's str.format does: "{}" takes the next
	// value, "{0}" value 0, "{name}" the value whose Names entry is name;
	// "{{" and "}}" are literal braces.
	Template string
	Values   []string
	// Names, if set, names each value for "{name}" fields (Captum's dict
	// values).
	Names []string
	// Baselines replace absent values; nil means the empty string for
	// every value (Captum's default).
	Baselines []string
	// Mask, if set, gives each value a feature id; values with the same id
	// are one feature, present or absent together.
	Mask []int
}

func (t *TextTemplateInput) check() error {
	if len(t.Values) == 0 {
		return fmt.Errorf("llm: TextTemplateInput has no values")
	}
	if t.Names != nil && len(t.Names) != len(t.Values) {
		return fmt.Errorf("llm: TextTemplateInput has %d names for %d values", len(t.Names), len(t.Values))
	}
	if t.Baselines != nil && len(t.Baselines) != len(t.Values) {
		return fmt.Errorf("llm: TextTemplateInput has %d baselines for %d values", len(t.Baselines), len(t.Values))
	}
	if t.Mask != nil && len(t.Mask) != len(t.Values) {
		return fmt.Errorf("llm: TextTemplateInput has a mask of %d ids for %d values", len(t.Mask), len(t.Values))
	}
	return nil
}

// featureOf returns, per value, its interpretable feature index, and the
// number of features. Mask ids are numbered in ascending order.
func (t *TextTemplateInput) featureOf() ([]int, int) {
	idx := make([]int, len(t.Values))
	if t.Mask == nil {
		for i := range idx {
			idx[i] = i
		}
		return idx, len(idx)
	}
	ids := slices.Clone(t.Mask)
	sort.Ints(ids)
	ids = slices.Compact(ids)
	for i, m := range t.Mask {
		idx[i], _ = slices.BinarySearch(ids, m)
	}
	return idx, len(ids)
}

// NumFeatures returns the number of features: values, or mask groups.
func (t *TextTemplateInput) NumFeatures(Tokenizer) (int, error) {
	if err := t.check(); err != nil {
		return 0, err
	}
	_, n := t.featureOf()
	return n, nil
}

// Text returns the filled template with feature i present when on[i] (nil:
// all present).
func (t *TextTemplateInput) Text(on []bool) (string, error) {
	if err := t.check(); err != nil {
		return "", err
	}
	idx, nf := t.featureOf()
	if on != nil && len(on) != nf {
		return "", fmt.Errorf("llm: %d on/off flags for %d features", len(on), nf)
	}
	vals := slices.Clone(t.Values)
	for i := range vals {
		if on != nil && !on[idx[i]] {
			vals[i] = ""
			if t.Baselines != nil {
				vals[i] = t.Baselines[i]
			}
		}
	}
	return formatTemplate(t.Template, vals, t.Names)
}

// Tokens tokenizes the filled template.
func (t *TextTemplateInput) Tokens(tok Tokenizer, on []bool) ([]int64, error) {
	s, err := t.Text(on)
	if err != nil {
		return nil, err
	}
	if tok == nil {
		return nil, fmt.Errorf("llm: TextTemplateInput needs a tokenizer")
	}
	ids, err := tok.Encode(s)
	if err != nil {
		return nil, fmt.Errorf("llm: tokenizing %q: %w", s, err)
	}
	return ids, nil
}

// FeatureNames returns the template's values.
func (t *TextTemplateInput) FeatureNames(Tokenizer) ([]string, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	return slices.Clone(t.Values), nil
}

// FormatAttr gives every value its feature's attribution.
func (t *TextTemplateInput) FormatAttr(a [][]float64) [][]float64 {
	idx, _ := t.featureOf()
	out := make([][]float64, len(a))
	for r, row := range a {
		out[r] = make([]float64, len(idx))
		for i, f := range idx {
			out[r][i] = row[f]
		}
	}
	return out
}

// formatTemplate fills a Python format string.
func formatTemplate(tmpl string, vals, names []string) (string, error) {
	var b strings.Builder
	next := 0
	for i := 0; i < len(tmpl); i++ {
		c := tmpl[i]
		switch c {
		case '{':
			if i+1 < len(tmpl) && tmpl[i+1] == '{' {
				b.WriteByte('{')
				i++
				continue
			}
			j := strings.IndexByte(tmpl[i:], '}')
			if j < 0 {
				return "", fmt.Errorf("llm: template %q: unclosed '{'", tmpl)
			}
			field := tmpl[i+1 : i+j]
			if k := strings.IndexAny(field, "!:"); k >= 0 {
				return "", fmt.Errorf("llm: template %q: conversions and format specs ({%s}) are not supported", tmpl, field)
			}
			var k int
			switch {
			case field == "":
				k = next
				next++
			default:
				n, err := strconv.Atoi(field)
				if err == nil {
					k = n
				} else {
					k = slices.Index(names, field)
					if k < 0 {
						return "", fmt.Errorf("llm: template %q: no value named %q", tmpl, field)
					}
				}
			}
			if k < 0 || k >= len(vals) {
				return "", fmt.Errorf("llm: template %q: field {%s} but %d values", tmpl, field, len(vals))
			}
			b.WriteString(vals[k])
			i += j
		case '}':
			if i+1 < len(tmpl) && tmpl[i+1] == '}' {
				b.WriteByte('}')
				i++
				continue
			}
			return "", fmt.Errorf("llm: template %q: single '}'", tmpl)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// TextTokenInput is a prompt whose features are its tokens (Captum's
// TextTokenInput): an absent token is replaced by the baseline token;
// tokens listed in SkipTokens (such as the beginning-of-sequence token) are
// not features and never change.
type TextTokenInput struct {
	// Text is tokenized with the special tokens; IDs, if set, is used
	// instead of tokenizing Text.
	Text string
	IDs  []int64
	// Baseline is the id that replaces absent tokens (Captum's default 0,
	// often the unknown token); BaselineToken, if set, names it instead.
	Baseline      int64
	BaselineToken string
	// SkipTokens and SkipIDs are the tokens that are not features.
	SkipTokens []string
	SkipIDs    []int64
}

// resolve returns the prompt's ids, the positions of its features and the
// baseline id.
func (t *TextTokenInput) resolve(tok Tokenizer) (ids []int64, pos []int, base int64, err error) {
	ids = t.IDs
	if ids == nil {
		if tok == nil {
			return nil, nil, 0, fmt.Errorf("llm: TextTokenInput needs a tokenizer for its text")
		}
		if ids, err = tok.Encode(t.Text); err != nil {
			return nil, nil, 0, fmt.Errorf("llm: tokenizing %q: %w", t.Text, err)
		}
	}
	if len(ids) == 0 {
		return nil, nil, 0, fmt.Errorf("llm: TextTokenInput has no tokens")
	}
	if tok == nil && (len(t.SkipTokens) > 0 || t.BaselineToken != "") {
		return nil, nil, 0, fmt.Errorf("llm: TextTokenInput needs a tokenizer for its skip and baseline tokens")
	}
	skip := slices.Clone(t.SkipIDs)
	for _, s := range t.SkipTokens {
		id, ok := tok.TokenToID(s)
		if !ok {
			return nil, nil, 0, fmt.Errorf("llm: skip token %q is not in the vocabulary", s)
		}
		skip = append(skip, id)
	}
	for i, id := range ids {
		if !slices.Contains(skip, id) {
			pos = append(pos, i)
		}
	}
	base = t.Baseline
	if t.BaselineToken != "" {
		id, ok := tok.TokenToID(t.BaselineToken)
		if !ok {
			return nil, nil, 0, fmt.Errorf("llm: baseline token %q is not in the vocabulary", t.BaselineToken)
		}
		base = id
	}
	return ids, pos, base, nil
}

// NumFeatures returns the number of tokens not skipped.
func (t *TextTokenInput) NumFeatures(tok Tokenizer) (int, error) {
	_, pos, _, err := t.resolve(tok)
	return len(pos), err
}

// Tokens returns the prompt's ids with absent features replaced by the
// baseline id.
func (t *TextTokenInput) Tokens(tok Tokenizer, on []bool) ([]int64, error) {
	ids, pos, base, err := t.resolve(tok)
	if err != nil {
		return nil, err
	}
	if on == nil {
		return slices.Clone(ids), nil
	}
	if len(on) != len(pos) {
		return nil, fmt.Errorf("llm: %d on/off flags for %d token features", len(on), len(pos))
	}
	out := slices.Clone(ids)
	for k, p := range pos {
		if !on[k] {
			out[p] = base
		}
	}
	return out, nil
}

// FeatureNames returns the feature tokens (convert_ids_to_tokens).
func (t *TextTokenInput) FeatureNames(tok Tokenizer) ([]string, error) {
	ids, pos, _, err := t.resolve(tok)
	if err != nil {
		return nil, err
	}
	if tok == nil {
		return nil, fmt.Errorf("llm: TextTokenInput needs a tokenizer to name its tokens")
	}
	out := make([]string, len(pos))
	for k, p := range pos {
		s, ok := tok.IDToToken(ids[p])
		if !ok {
			return nil, fmt.Errorf("llm: id %d is not in the tokenizer's vocabulary", ids[p])
		}
		out[k] = s
	}
	return out, nil
}

// FormatAttr returns a unchanged: every feature is a token.
func (t *TextTokenInput) FormatAttr(a [][]float64) [][]float64 { return a }
