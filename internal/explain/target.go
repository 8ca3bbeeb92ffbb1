package explain

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/tensor"
)

// Target is the output element explained for each example, as a request
// gives it: none (the zero Target, Captum's default for models that give
// one number per example), one index for every example, one per example,
// an index tuple for outputs of more dimensions, or the class the model
// predicts for each example. ParseTarget reads every form from text and
// String writes it back; Class and Predicted make the usual ones.
type Target struct {
	predicted bool
	all       []int   // one index tuple for every example
	each      [][]int // one index tuple per example
}

// Class targets output index i (of outputs [N, C]) for every example.
func Class(i int) Target { return Target{all: []int{i}} }

// Predicted targets, for each example, the class the model predicts (the
// largest of its scores [N, C]).
func Predicted() Target { return Target{predicted: true} }

// IsZero reports whether the target is none.
func (t Target) IsZero() bool { return !t.predicted && t.all == nil && t.each == nil }

// IsPredicted reports whether the target is the predicted class.
func (t Target) IsPredicted() bool { return t.predicted }

// targetSyntax is what ParseTarget reads, for its errors.
const targetSyntax = `want an index, indices separated by commas (one per example), an index tuple such as (0,2) or one per example, or pred`

// ParseTarget reads a target from text, the one syntax of every front end:
//
//	""               none: Captum's default, for a model that gives one number per example
//	"3"              output index 3 for every example (attr.Class; Class)
//	"1,4"            one index per example (attr.Classes)
//	"(0,2)"          an index tuple for every example, for outputs [N, A, B] (attr.Index)
//	"(0,2),(1,3)"    one index tuple per example (attr.Indices)
//	"pred"           the class the model predicts for each example ("predicted" too)
//
// Spaces around the parts are ignored. Errors name the text at fault.
func ParseTarget(s string) (Target, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return Target{}, nil
	case strings.EqualFold(s, "pred") || strings.EqualFold(s, "predicted"):
		return Predicted(), nil
	case strings.HasPrefix(s, "("):
		tuples, err := tuplesOf(s)
		if err != nil {
			return Target{}, err
		}
		if len(tuples) == 1 {
			return Target{all: tuples[0]}, nil
		}
		return Target{each: tuples}, nil
	}
	idx, err := indices(s, s)
	if err != nil {
		return Target{}, err
	}
	return indexTarget(idx), nil
}

// indexTarget targets one index for every example, or one per example.
func indexTarget(idx []int) Target {
	if len(idx) == 1 {
		return Class(idx[0])
	}
	each := make([][]int, len(idx))
	for e, i := range idx {
		each[e] = []int{i}
	}
	return Target{each: each}
}

// tuplesOf reads "(0,2),(1,3)".
func tuplesOf(s string) ([][]int, error) {
	var out [][]int
	for rest := s; ; {
		body, ok := strings.CutPrefix(rest, "(")
		inner, after, closed := strings.Cut(body, ")")
		if !ok || !closed {
			return nil, fmt.Errorf("target %q: %q is not an index tuple in parentheses; %s", s, rest, targetSyntax)
		}
		idx, err := indices(s, inner)
		if err != nil {
			return nil, err
		}
		out = append(out, idx)
		if after = strings.TrimSpace(after); after == "" {
			return out, nil
		}
		next, comma := strings.CutPrefix(after, ",")
		if rest = strings.TrimSpace(next); !comma || rest == "" {
			return nil, fmt.Errorf("target %q: %q after a tuple; want a comma and another tuple", s, after)
		}
	}
}

// indices reads the comma-separated indices of list, part of target text s.
func indices(s, list string) ([]int, error) {
	var out []int
	for _, p := range strings.Split(list, ",") {
		p = strings.TrimSpace(p)
		v, err := strconv.Atoi(p)
		if err != nil {
			return nil, fmt.Errorf("target %q: %q is not an index; %s", s, p, targetSyntax)
		}
		if v < 0 {
			return nil, fmt.Errorf("target %q: index %d is negative; %s", s, v, targetSyntax)
		}
		out = append(out, v)
	}
	return out, nil
}

// String writes the target as ParseTarget reads it.
func (t Target) String() string {
	switch {
	case t.predicted:
		return "pred"
	case t.all != nil && len(t.all) == 1:
		return strconv.Itoa(t.all[0])
	case t.all != nil:
		return tuple(t.all)
	}
	scalar := true
	for _, idx := range t.each {
		scalar = scalar && len(idx) == 1
	}
	parts := make([]string, len(t.each))
	for e, idx := range t.each {
		if scalar {
			parts[e] = strconv.Itoa(idx[0])
		} else {
			parts[e] = tuple(idx)
		}
	}
	return strings.Join(parts, ",")
}

// tuple writes an index tuple, "(0,2)".
func tuple(idx []int) string {
	parts := make([]string, len(idx))
	for i, v := range idx {
		parts[i] = strconv.Itoa(v)
	}
	return "(" + strings.Join(parts, ",") + ")"
}

// resolve returns the attr target for a batch of n examples, and the index
// tuple of each example (nil for none); the predicted class asks the model
// (inputs then additional, as Net.Eval takes them).
func (t Target) resolve(ctx context.Context, nt *attr.Net, n int, inputs, additional []*tensor.Tensor) (attr.Target, [][]int, error) {
	if t.predicted {
		y, err := nt.Eval(ctx, append(append([]*tensor.Tensor(nil), inputs...), additional...))
		if err != nil {
			return attr.Target{}, nil, fmt.Errorf("the model on inputs of shape %s: %w", shapesOf(inputs), err)
		}
		top, _, err := attr.TopClasses(y)
		if err != nil {
			return attr.Target{}, nil, &RequestError{fmt.Errorf("target pred: %w", err)}
		}
		t = indexTarget(top)
	}
	switch {
	case t.all != nil:
		each := make([][]int, n)
		for e := range each {
			each[e] = t.all
		}
		return attr.Index(t.all...), each, nil
	case t.each != nil:
		return attr.Indices(t.each...), t.each, nil
	}
	return attr.Target{}, nil, nil
}
