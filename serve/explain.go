package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/internal/explain"
	"github.com/loupe-ml/loupe/internal/methods"
	"github.com/loupe-ml/loupe/tensor"
)

// defaultMethod is the method of an explanation that names none.
const defaultMethod = "IntegratedGradients"

// job is an explanation request, checked: what internal/explain runs
// (its request, resolved) and what serve adds around it.
type job struct {
	m      *model
	method string
	req    explain.Request // the method, the parameters given, the layer, the baselines
	vals   methods.Values  // the parameters in effect (fit_deadline lowers counts in it)
	target explain.Target
	inputs []*tensor.Tensor // the model's inputs, in its order
	n      int
	cond   *ExplainIf
	fit    bool
	fitted map[string]fitted
	base   any  // the baselines as answered: a number, or "given"
	dist   bool // the method's baselines are a distribution

	// Set by explain for runMethod: the attributed and extra inputs of
	// the examples explained, their targets and baselines.
	attributed []*tensor.Tensor
	run        explain.Request
}

// fitted is a count lowered to fit a deadline.
type fitted struct {
	Asked int `json:"asked"`
	Used  int `json:"used"`
}

// parseTarget reads a request's target: absent, "predicted" or "pred"
// (the default), "none", an output index, one per example, or any text
// explain.ParseTarget reads (index tuples "(0,2)" for outputs of more
// dimensions).
func parseTarget(raw json.RawMessage) (explain.Target, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return explain.Predicted(), nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return explain.Target{}, badRequest("target: %v", err)
	}
	index := func(f float64) (int, error) {
		if f != math.Trunc(f) || f < 0 || f > 1<<30 {
			return 0, badRequest("target %v: want an output index (0 or more)", f)
		}
		return int(f), nil
	}
	switch x := v.(type) {
	case string:
		if strings.EqualFold(x, "none") {
			return explain.Target{}, nil
		}
		t, err := explain.ParseTarget(x)
		if err != nil {
			return explain.Target{}, badRequest("%v", err)
		}
		return t, nil
	case float64:
		i, err := index(x)
		return explain.Class(i), err
	case []any:
		idx := make([][]int, len(x))
		for e, v := range x {
			f, ok := v.(float64)
			if !ok {
				return explain.Target{}, badRequest("target: %v is not an index", v)
			}
			i, err := index(f)
			if err != nil {
				return explain.Target{}, err
			}
			idx[e] = []int{i}
		}
		return explain.Indices(idx...), nil
	}
	return explain.Target{}, badRequest(`target %s: want an output index, one per example, "predicted" or "none"`, string(raw))
}

// newJob checks an explanation request before it waits for a slot: the
// method and its parameters (explain.Check with NoFiles: names, bounds,
// no files), the layer, the baselines, the target.
func (s *Server) newJob(m *model, req v1Request, inputs []*tensor.Tensor, n int) (*job, error) {
	if m.nt == nil {
		return nil, badRequest("model %s cannot be explained: %v", m.Name, m.ntErr)
	}
	j := &job{m: m, method: req.Method, inputs: inputs, n: n, cond: req.ExplainIf, fit: req.FitDeadline}
	if j.method == "" {
		j.method = defaultMethod
	}
	j.req = explain.Request{Method: j.method, NoFiles: true, Delta: true}
	var layer, base json.RawMessage
	for _, k := range sortedKeys(req.Params) {
		raw := req.Params[k]
		switch k {
		case "baselines":
			base = raw
			continue
		case "layer":
			layer = raw
			continue
		}
		v, err := paramText(k, raw)
		if err != nil {
			return nil, err
		}
		j.req.Params = append(j.req.Params, k+"="+v)
	}
	spec, vals, err := explain.Check(j.req)
	if err != nil {
		if errors.Is(err, explain.ErrUnknownMethod) && len(explain.Nearest(j.method, methods.Names())) == 0 {
			return nil, badRequest("%v (loupe has %s)", err, strings.Join(methods.Names(), ", "))
		}
		return nil, badRequest("%v", err)
	}
	j.vals = vals
	if layer != nil {
		if err := json.Unmarshal(layer, &j.req.Layer); err != nil {
			return nil, badRequest("layer: want a layer's name (a string)")
		}
		if !spec.Layer {
			return nil, badRequest("%s takes no layer", j.method)
		}
	}
	if err := j.setBaselines(base, spec.Distribution); err != nil {
		return nil, err
	}
	if j.target, err = parseTarget(req.Target); err != nil {
		return nil, err
	}
	if !j.target.IsPredicted() {
		if _, err := j.target.Examples(n, nil); err != nil {
			return nil, badRequest("%v", err)
		}
	}
	if c := req.ExplainIf; c != nil {
		for _, p := range []*float64{c.MinProbability, c.MaxProbability} {
			if p != nil && !(*p >= 0 && *p <= 1) {
				return nil, badRequest("explain_if: probabilities lie in [0, 1], got %v", *p)
			}
		}
	}
	return j, nil
}

// explainAnswer is :explain's answer.
type explainAnswer struct {
	Model        string            `json:"model"`
	SHA256       string            `json:"model_sha256"`
	Method       string            `json:"method"`
	Params       map[string]any    `json:"params"`
	Fitted       map[string]fitted `json:"fitted,omitempty"`
	Explanations []explanation     `json:"explanations"`
	ElapsedMS    float64           `json:"elapsed_ms"`
}

// explanation is one example's.
type explanation struct {
	Target       any      `json:"target"`
	Prediction   nested   `json:"prediction"`
	Probability  *float64 `json:"probability,omitempty"`
	Attributions any      `json:"attributions,omitempty"`
	Delta        *float64 `json:"delta,omitempty"`
	Skipped      string   `json:"skipped,omitempty"`
}

// explain answers a job in its slot: one forward pass gives the
// predictions and the predicted targets (explain.Target.Examples reads
// them from it, so the explanation does not run the model again for
// them), then explain.Run runs the method on the examples explain_if
// keeps.
func (s *Server) explain(ctx context.Context, j *job, start time.Time, deadline time.Duration) (*explainAnswer, error) {
	m := j.m
	t0 := time.Now()
	y, err := m.forward(ctx, j.inputs)
	if err != nil {
		return nil, err
	}
	fwd := time.Since(t0)
	var prob []float64
	if y.Rank() == 2 && y.DType == tensor.Float32 {
		_, prob, _ = attr.TopClasses(y)
	}
	targets, err := j.target.Examples(j.n, y)
	if err != nil {
		return nil, badRequest("%v", err)
	}
	ans := &explainAnswer{Model: m.Name, SHA256: m.SHA256, Method: j.method, Explanations: make([]explanation, j.n)}
	var rows []int
	for e := range ans.Explanations {
		x := &ans.Explanations[e]
		x.Prediction = nested{y, e}
		if targets != nil {
			x.Target = targets[e]
			if len(targets[e]) == 1 {
				x.Target = targets[e][0]
			}
		}
		if prob != nil {
			p := prob[e]
			x.Probability = &p
		}
		if why := j.skip(prob, e); why != "" {
			x.Skipped = why
			continue
		}
		rows = append(rows, e)
	}
	if j.fit {
		j.fitDeadline(fwd*time.Duration(len(rows))/time.Duration(max(j.n, 1)), start.Add(deadline))
	}
	ans.Params = j.params()
	ans.Fitted = j.fitted
	if len(rows) == 0 {
		return ans, nil
	}
	if err := j.prepare(rows, targets); err != nil {
		return nil, err
	}
	res, err := s.attribute(ctx, j)
	if err != nil {
		return nil, err
	}
	for k, e := range rows {
		x := &ans.Explanations[e]
		x.Attributions = j.attributions(res.Attributions, k)
		if res.Delta != nil && res.Delta.Len() == len(rows) {
			d := float64(res.Delta.F[k])
			if !math.IsNaN(d) && !math.IsInf(d, 0) {
				x.Delta = &d
			}
		}
	}
	return ans, nil
}

// prepare sets what runMethod runs: the request to explain.Run with the
// counts fit_deadline lowered, and the examples explained (rows of the
// batch): their attributed and extra inputs, their targets, their rows
// of the baselines.
func (j *job) prepare(rows []int, targets [][]int) error {
	all := len(rows) == j.n
	take := func(t *tensor.Tensor) (*tensor.Tensor, error) {
		if all {
			return t, nil
		}
		return takeRows(t, rows)
	}
	j.run = j.req
	j.run.Params = nil
	for _, kv := range j.req.Params {
		if k, _, _ := strings.Cut(kv, "="); j.fitted[k] == (fitted{}) {
			j.run.Params = append(j.run.Params, kv)
		}
	}
	for _, k := range sortedKeys(j.fitted) {
		j.run.Params = append(j.run.Params, k+"="+strconv.Itoa(j.fitted[k].Used))
	}
	j.attributed = nil
	for i, in := range j.m.inputs {
		t, err := take(j.inputs[i])
		if err != nil {
			return err
		}
		if in.DType == tensor.Float32 {
			j.attributed = append(j.attributed, t)
		} else {
			j.run.Additional = append(j.run.Additional, t)
		}
	}
	if !all && !j.dist && j.req.Baselines != nil {
		j.run.Baselines = make([]*tensor.Tensor, len(j.req.Baselines))
		for i, b := range j.req.Baselines {
			j.run.Baselines[i] = b
			if b.Rank() > 0 && b.Shape[0] == j.n && j.n > 1 {
				var err error
				if j.run.Baselines[i], err = takeRows(b, rows); err != nil {
					return err
				}
			}
		}
	}
	if targets != nil {
		idx := make([][]int, len(rows))
		for k, e := range rows {
			idx[k] = targets[e]
		}
		j.run.Target = explain.Indices(idx...)
	}
	return nil
}

// skip says why example e is not explained under explain_if, or "".
func (j *job) skip(prob []float64, e int) string {
	c := j.cond
	if c == nil {
		return ""
	}
	if prob == nil {
		return "explain_if needs scores [N, classes]"
	}
	if c.MinProbability != nil && prob[e] < *c.MinProbability {
		return fmt.Sprintf("probability %.4g below min_probability %g", prob[e], *c.MinProbability)
	}
	if c.MaxProbability != nil && prob[e] > *c.MaxProbability {
		return fmt.Sprintf("probability %.4g above max_probability %g", prob[e], *c.MaxProbability)
	}
	return ""
}

// attributions are example k's attributions: the first input's nested
// arrays for a model of one attributed input, else an object by input.
func (j *job) attributions(a []*tensor.Tensor, k int) any {
	if len(a) == 1 {
		return nested{a[0], k}
	}
	out := map[string]nested{}
	for i, t := range a {
		if t != nil && i < len(j.m.nt.Inputs) {
			out[j.m.nt.Inputs[i]] = nested{t, k}
		}
	}
	return out
}

// setBaselines reads params.baselines into the request: a number (every
// input), nested arrays (one input's: an example's shape, or rows), or an
// object of them by input name (the inputs it leaves out get zeros, or
// for distribution methods zeros twice).
func (j *job) setBaselines(raw json.RawMessage, dist bool) error {
	j.base, j.dist = 0.0, dist
	if raw == nil {
		return nil
	}
	names := j.m.nt.Inputs
	raws := map[string]json.RawMessage{}
	if len(raw) > 0 && raw[0] == '{' {
		var byName map[string]json.RawMessage
		if err := json.Unmarshal(raw, &byName); err != nil {
			return badRequest("baselines: %v", err)
		}
		for k, v := range byName {
			if !slices.Contains(names, k) {
				return badRequest("baselines: the model has no attributed input %q (it has %s)", k, strings.Join(names, ", "))
			}
			raws[k] = v
		}
	} else {
		var f float64
		if json.Unmarshal(raw, &f) == nil {
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return badRequest("baselines=%v: want a finite number", f)
			}
			j.req.Baseline, j.base = float32(f), f
			return nil
		}
		if len(names) != 1 {
			return badRequest("baselines: model %s has %d attributed inputs: give {\"input\": baseline, ...}", j.m.Name, len(names))
		}
		raws[names[0]] = raw
	}
	if len(raws) == 0 {
		return nil
	}
	j.req.Baselines = make([]*tensor.Tensor, len(names))
	for i, name := range names {
		x := j.inputs[slices.Index(j.m.inputNames(), name)]
		raw, ok := raws[name]
		if !ok {
			j.req.Baselines[i] = tensor.Scalar(0)
			if dist {
				j.req.Baselines[i] = methods.DefaultDistribution([]*tensor.Tensor{x}, 0)[0]
			}
			continue
		}
		shape, vals, err := flatten(raw, x.Len()*4+1)
		if err != nil {
			return badRequest("baselines of %q: %v", name, err)
		}
		ex := x.Shape[1:]
		switch {
		case len(shape) == 0:
		case tensor.SameShape(shape, ex):
			shape = append([]int{1}, shape...)
		case len(shape) == len(ex)+1 && tensor.SameShape(shape[1:], ex):
		default:
			return badRequest("baselines of %q: shape %v; want a number, one example's shape %v, or rows [K %v]", name, shape, ex, strings.Trim(fmt.Sprint(ex), "[]"))
		}
		if j.req.Baselines[i], err = toTensor(tensor.Float32, shape, vals); err != nil {
			return badRequest("baselines of %q: %v", name, err)
		}
	}
	j.base = "given"
	return nil
}

// fitDeadline lowers the job's step or sample count so that its work,
// estimated from the forward pass's time (a gradient pass as three
// forward passes, per step or sample), fits before the deadline with a
// margin.
func (j *job) fitDeadline(fwd time.Duration, deadline time.Time) {
	left := time.Until(deadline)
	per := 3 * max(fwd, time.Microsecond)
	for _, p := range countParams {
		v, ok := j.vals[p]
		if !ok {
			continue
		}
		asked, err := strconv.Atoi(v)
		if err != nil {
			continue
		}
		can := int(float64(left) * 0.6 / float64(per))
		if can < asked {
			used := max(can, 1)
			j.vals[p] = strconv.Itoa(used)
			if j.fitted == nil {
				j.fitted = map[string]fitted{}
			}
			j.fitted[p] = fitted{Asked: asked, Used: used}
		}
	}
}

// params are the effective parameters as JSON values: numbers and
// booleans as such, the rest as text; the layer and the baselines.
func (j *job) params() map[string]any {
	out := map[string]any{}
	for k, v := range j.vals {
		if f, err := strconv.ParseFloat(v, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
			out[k] = f
		} else if b, err := strconv.ParseBool(v); err == nil {
			out[k] = b
		} else {
			out[k] = v
		}
	}
	if j.req.Layer != "" {
		out["layer"] = j.req.Layer
	}
	out["baselines"] = j.base
	if j.base == nil {
		out["baselines"] = 0.0
	}
	return out
}

// runMethod runs the job's method through explain.Run on the examples
// explained, asking for the convergence delta.
func (s *Server) runMethod(ctx context.Context, j *job) (*attr.Result, error) {
	res, err := explain.Run(ctx, j.m.nt, j.attributed, j.run)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return nil, err
		}
		return nil, badRequest("%s: %v", j.method, err)
	}
	return &attr.Result{Attributions: res.Attributions, Delta: res.Delta}, nil
}

// takeRows returns the rows of a batch, as a new batch.
func takeRows(t *tensor.Tensor, rows []int) (*tensor.Tensor, error) {
	parts := make([]*tensor.Tensor, len(rows))
	for k, r := range rows {
		e, err := t.Example(r)
		if err == nil {
			parts[k], err = e.Reshape(append([]int{1}, e.Shape...)...)
		}
		if err != nil {
			return nil, err
		}
	}
	return tensor.Batch(parts...)
}
