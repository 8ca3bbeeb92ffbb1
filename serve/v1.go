package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// v1Request is the body of :predict and :explain.
type v1Request struct {
	Instances json.RawMessage            `json:"instances"`
	Inputs    map[string]json.RawMessage `json:"inputs"`

	Method      string                     `json:"method"`
	Target      json.RawMessage            `json:"target"`
	Params      map[string]json.RawMessage `json:"params"`
	DeadlineMS  *int64                     `json:"deadline_ms"`
	FitDeadline bool                       `json:"fit_deadline"`
	ExplainIf   *ExplainIf                 `json:"explain_if"`
}

// ExplainIf is an explanation's condition: only the examples whose
// predicted class has a softmax probability within [MinProbability,
// MaxProbability] are explained (SageMaker Clarify's EnableExplanations),
// so that a service can explain the confident, or the doubtful, part of
// its traffic.
type ExplainIf struct {
	MinProbability *float64 `json:"min_probability"`
	MaxProbability *float64 `json:"max_probability"`
}

// v1 answers :predict and :explain on a model.
func (s *Server) v1(w http.ResponseWriter, r *http.Request, name, verb string) {
	var req v1Request
	x, m := s.begin(w, r, name, verb, &req)
	defer x.end()
	if m == nil {
		return
	}
	var err error
	if x.deadline, err = s.deadline(req.DeadlineMS); err != nil {
		x.fail(err)
		return
	}
	inputs, n, err := m.v1Inputs(req, s.cfg)
	if err != nil {
		x.fail(err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), x.deadline)
	defer cancel()
	if verb == "predict" {
		if req.Method != "" || req.Target != nil || req.Params != nil || req.FitDeadline || req.ExplainIf != nil {
			x.fail(badRequest("method, target, params, fit_deadline and explain_if belong to :explain"))
			return
		}
		v, err := s.do(ctx, func(ctx context.Context) (any, error) { return m.forward(ctx, inputs) })
		if err != nil {
			x.fail(err)
			return
		}
		y := v.(*tensor.Tensor)
		preds := make([]nested, n)
		for e := range preds {
			preds[e] = nested{y, e}
		}
		writeJSON(w, http.StatusOK, map[string]any{"predictions": preds})
		return
	}
	j, err := s.newJob(m, req, inputs, n)
	if err != nil {
		x.fail(err)
		return
	}
	x.method = j.method
	v, err := s.do(ctx, func(ctx context.Context) (any, error) { return s.explain(ctx, j, x.start, x.deadline) })
	if err != nil {
		x.fail(err)
		return
	}
	ans := v.(*explainAnswer)
	ans.ElapsedMS = float64(time.Since(x.start).Microseconds()) / 1000
	if len(j.fitted) > 0 {
		s.met.fitted.WithLabelValues(m.Name, j.method).Inc()
	}
	writeJSON(w, http.StatusOK, ans)
}

// exampleShape is an input's shape without the batch dimension: -1 for
// dimensions the model leaves open; nil when it declares none.
func exampleShape(in engine.Input) []int {
	if in.Shape == nil {
		return nil
	}
	out := make([]int, 0, len(in.Shape))
	for _, d := range in.Shape[1:] {
		out = append(out, dimValue(d))
	}
	return out
}

func dimValue(d graph.Dim) int {
	if d.Value > 0 {
		return d.Value
	}
	return -1
}

// limitOf is the most values one input of a request may hold: the
// examples allowed times the example's size when the model fixes it, or
// what the body could hold.
func limitOf(shape []int, c Config) int {
	size := 1
	for _, d := range shape {
		if d < 0 {
			return int(c.MaxBodyBytes / 2)
		}
		size *= d
	}
	if shape == nil {
		return int(c.MaxBodyBytes / 2)
	}
	return c.MaxExamples * size
}

// showShape writes an expected shape, batch first: [N 3 32 32].
func showShape(shape []int) string {
	parts := []string{"N"}
	for _, d := range shape {
		if d < 0 {
			parts = append(parts, "?")
		} else {
			parts = append(parts, fmt.Sprint(d))
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// readInput reads one input's batch from nested arrays and checks it
// against the model's input: its shape (batch first), its size, its type.
func readInput(in engine.Input, raw json.RawMessage, c Config) (*tensor.Tensor, error) {
	want := exampleShape(in)
	limit := limitOf(want, c)
	shape, vals, err := flatten(raw, limit)
	if errors.Is(err, errTooMany) {
		return nil, tooLarge("input %q: more than %d values (at most %d examples of shape %s)", in.Name, limit, c.MaxExamples, showShape(want))
	}
	if err != nil {
		return nil, badRequest("input %q: %v; want nested arrays of shape %s", in.Name, err, showShape(want))
	}
	if len(shape) == 0 {
		return nil, badRequest("input %q: a number; want one array per example, of shape %s", in.Name, showShape(want))
	}
	if shape[0] > c.MaxExamples {
		return nil, tooLarge("input %q: %d examples; at most %d per request", in.Name, shape[0], c.MaxExamples)
	}
	if want != nil {
		ok := len(shape) == len(want)+1
		for i := 0; ok && i < len(want); i++ {
			ok = want[i] < 0 || want[i] == shape[i+1]
		}
		if !ok {
			return nil, badRequest("input %q: shape %v (batch first); the model takes %s", in.Name, shape, showShape(want))
		}
	}
	t, err := toTensor(in.DType, shape, vals)
	if err != nil {
		return nil, badRequest("input %q: %v", in.Name, err)
	}
	return t, nil
}

// v1Inputs reads a request's inputs, in the model's order, and their
// batch size.
func (m *model) v1Inputs(req v1Request, c Config) ([]*tensor.Tensor, int, error) {
	names := m.inputNames()
	raws := make([]json.RawMessage, len(m.inputs))
	switch {
	case req.Instances != nil && req.Inputs != nil:
		return nil, 0, badRequest(`give "instances" or "inputs", not both`)
	case req.Instances != nil:
		if len(m.inputs) != 1 {
			return nil, 0, badRequest(`model %s takes %d inputs (%s): give "inputs": {"name": [...], ...}`, m.Name, len(m.inputs), strings.Join(names, ", "))
		}
		raws[0] = req.Instances
	case req.Inputs != nil:
		for k := range req.Inputs {
			i := slices.Index(names, k)
			if i < 0 {
				return nil, 0, badRequest("model %s has no input %q (it takes %s)", m.Name, k, strings.Join(names, ", "))
			}
			raws[i] = req.Inputs[k]
		}
		for i, r := range raws {
			if r == nil {
				return nil, 0, badRequest("input %q is missing (model %s takes %s)", names[i], m.Name, strings.Join(names, ", "))
			}
		}
	default:
		return nil, 0, badRequest(`no "instances" (one array per example) or "inputs"`)
	}
	out := make([]*tensor.Tensor, len(raws))
	n := -1
	for i, raw := range raws {
		t, err := readInput(m.inputs[i], raw, c)
		if err != nil {
			return nil, 0, err
		}
		if n >= 0 && t.Shape[0] != n {
			return nil, 0, badRequest("input %q has %d examples, input %q %d", names[i], t.Shape[0], names[0], n)
		}
		n, out[i] = t.Shape[0], t
	}
	return out, n, nil
}

// inputNames are the model's inputs' names, in its order.
func (m *model) inputNames() []string {
	out := make([]string, len(m.inputs))
	for i, in := range m.inputs {
		out[i] = in.Name
	}
	return out
}

// forward runs the model on inputs in its order and returns the output
// predicted and explained.
func (m *model) forward(ctx context.Context, inputs []*tensor.Tensor) (*tensor.Tensor, error) {
	feeds := make(map[string]*tensor.Tensor, len(inputs))
	for i, in := range m.inputs {
		feeds[in.Name] = inputs[i]
	}
	p, err := m.Model.Model.Forward(ctx, feeds, &engine.Options{Outputs: []string{m.output}})
	if err != nil {
		return nil, err
	}
	y, err := p.Value(m.output)
	if err != nil {
		return nil, err
	}
	if y.Rank() == 0 || y.Shape[0] != inputs[0].Shape[0] {
		return nil, fmt.Errorf("the model's output %q has shape %v: want the batch (%d) first", m.output, y.Shape, inputs[0].Shape[0])
	}
	return y, nil
}

// paramText is a parameter's JSON value as the method table's text: a
// number or string as is, a list of numbers joined by commas.
func paramText(name string, raw json.RawMessage) (string, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", badRequest("parameter %s: %v", name, err)
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		return fmt.Sprint(x), nil
	case float64:
		return strings.TrimSpace(string(raw)), nil
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			f, ok := e.(float64)
			if !ok {
				return "", badRequest("parameter %s: want a number, a string or a list of numbers", name)
			}
			parts[i] = fmt.Sprint(f)
		}
		return strings.Join(parts, ","), nil
	}
	return "", badRequest("parameter %s: want a number, a string or a list of numbers", name)
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// countParams are the parameters fit_deadline may lower, with how many
// gradient passes of the batch each unit costs (an estimate).
var countParams = []string{"n_steps", "n_samples", "nt_samples"}
