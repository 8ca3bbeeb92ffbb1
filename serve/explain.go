package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
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

// job is an explanation request, checked.
type job struct {
	m        *model
	method   string
	spec     methods.Spec
	vals     methods.Values
	layer    string
	inputs   []*tensor.Tensor // the model's inputs, in its order
	n        int
	target   targetSpec
	cond     *ExplainIf
	fit      bool
	fitted   map[string]fitted
	baseRaw  json.RawMessage // params.baselines
	baseRaw2 map[string]json.RawMessage

	// Set by explain for runMethod: the attributed and extra inputs of
	// the examples explained, their targets and baselines.
	attributed, extra []*tensor.Tensor
	attrTarget        attr.Target
	baselines         []*tensor.Tensor
}

// fitted is a count lowered to fit a deadline.
type fitted struct {
	Asked int `json:"asked"`
	Used  int `json:"used"`
}

// targetSpec is a request's target: the predicted class, an index for
// every example, one per example, or none.
type targetSpec struct {
	predicted bool
	none      bool
	all       int
	each      []int
}

func parseTarget(raw json.RawMessage, n int) (targetSpec, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return targetSpec{predicted: true}, nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return targetSpec{}, badRequest("target: %v", err)
	}
	index := func(f float64) (int, error) {
		if f != math.Trunc(f) || f < 0 || f > 1<<30 {
			return 0, badRequest("target %v: want an output index (0 or more)", f)
		}
		return int(f), nil
	}
	switch x := v.(type) {
	case string:
		switch strings.ToLower(x) {
		case "predicted", "pred":
			return targetSpec{predicted: true}, nil
		case "none":
			return targetSpec{none: true}, nil
		}
	case float64:
		i, err := index(x)
		return targetSpec{all: i}, err
	case []any:
		if len(x) != n {
			return targetSpec{}, badRequest("target: %d indices for %d examples: give one per example", len(x), n)
		}
		t := targetSpec{each: make([]int, n)}
		for e, v := range x {
			f, ok := v.(float64)
			if !ok {
				return targetSpec{}, badRequest("target: %v is not an index", v)
			}
			var err error
			if t.each[e], err = index(f); err != nil {
				return targetSpec{}, err
			}
		}
		return t, nil
	}
	return targetSpec{}, badRequest(`target %s: want an output index, one per example, "predicted" or "none"`, string(raw))
}

// newJob checks an explanation request before it waits for a slot: the
// method, its parameters (methods.Resolve with NoFiles: bounds and no
// files), the target.
func (s *Server) newJob(m *model, req v1Request, inputs []*tensor.Tensor, n int) (*job, error) {
	if m.nt == nil {
		return nil, badRequest("model %s cannot be explained: %v", m.Name, m.ntErr)
	}
	j := &job{m: m, method: req.Method, inputs: inputs, n: n, cond: req.ExplainIf, fit: req.FitDeadline}
	if j.method == "" {
		j.method = defaultMethod
	}
	spec, ok := methods.Lookup(j.method)
	if !ok {
		j.method = ""
		return nil, badRequest("%v %q (loupe has %s)", explain.ErrUnknownMethod, req.Method, methodNames())
	}
	j.spec = spec
	var given []string
	for _, k := range sortedKeys(req.Params) {
		raw := req.Params[k]
		switch k {
		case "baselines":
			if len(raw) > 0 && raw[0] == '{' {
				if err := json.Unmarshal(raw, &j.baseRaw2); err != nil {
					return nil, badRequest("baselines: %v", err)
				}
			} else {
				j.baseRaw = raw
			}
			continue
		case "layer":
			var l string
			if err := json.Unmarshal(raw, &l); err != nil {
				return nil, badRequest("layer: want a layer's name (a string)")
			}
			if !spec.Layer {
				return nil, badRequest("%s takes no layer", j.method)
			}
			j.layer = l
			continue
		}
		v, err := paramText(k, raw)
		if err != nil {
			return nil, err
		}
		given = append(given, k+"="+v)
	}
	vals, err := methods.Resolve(j.method, spec, given, methods.NoFiles())
	if err != nil {
		return nil, badRequest("%v", err)
	}
	j.vals = vals
	if err := j.setBaselines(); err != nil {
		return nil, err
	}
	if j.target, err = parseTarget(req.Target, n); err != nil {
		return nil, err
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
// predictions and the predicted targets, then the method runs on the
// examples explain_if keeps.
func (s *Server) explain(ctx context.Context, j *job, start time.Time, deadline time.Duration) (*explainAnswer, error) {
	m := j.m
	t0 := time.Now()
	y, err := m.forward(ctx, j.inputs)
	if err != nil {
		return nil, err
	}
	fwd := time.Since(t0)
	var top []int
	var prob []float64
	if y.Rank() == 2 && y.DType == tensor.Float32 {
		top, prob, _ = attr.TopClasses(y)
	}
	targets := make([][]int, j.n)
	switch {
	case j.target.predicted:
		if top == nil {
			return nil, badRequest(`target "predicted" needs scores [N, classes]; the model's output has shape %v: give a target (an index, or "none")`, y.Shape)
		}
		for e := range targets {
			targets[e] = []int{top[e]}
		}
	case j.target.none:
	case j.target.each != nil:
		for e := range targets {
			targets[e] = []int{j.target.each[e]}
		}
	default:
		for e := range targets {
			targets[e] = []int{j.target.all}
		}
	}
	if y.Rank() == 2 {
		for _, t := range targets {
			if t != nil && t[0] >= y.Shape[1] {
				return nil, badRequest("target %d: the model has %d outputs per example", t[0], y.Shape[1])
			}
		}
	}
	ans := &explainAnswer{Model: m.Name, SHA256: m.SHA256, Method: j.method, Explanations: make([]explanation, j.n)}
	var rows []int
	for e := range ans.Explanations {
		x := &ans.Explanations[e]
		x.Prediction = nested{y, e}
		if targets[e] != nil {
			x.Target = targets[e][0]
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
	// The examples explained, their targets.
	var attributed, extra []*tensor.Tensor
	for i, in := range m.inputs {
		t := j.inputs[i]
		if len(rows) < j.n {
			t = takeRows(t, rows)
		}
		if in.DType == tensor.Float32 {
			attributed = append(attributed, t)
		} else {
			extra = append(extra, t)
		}
	}
	j.attributed, j.extra = attributed, extra
	if len(rows) < j.n && !j.spec.Distribution {
		for i, b := range j.baselines {
			if b.Rank() > 0 && b.Shape[0] == j.n && j.n > 1 {
				j.baselines[i] = takeRows(b, rows)
			}
		}
	}
	if !j.target.none {
		idx := make([][]int, len(rows))
		for k, e := range rows {
			idx[k] = targets[e]
		}
		j.attrTarget = attr.Indices(idx...)
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

// setBaselines reads params.baselines: a number (every input), nested
// arrays (one input's: an example's shape, or rows), or an object of them
// by input name.
func (j *job) setBaselines() error {
	names := j.m.nt.Inputs
	raws := map[string]json.RawMessage{}
	switch {
	case j.baseRaw2 != nil:
		for k, v := range j.baseRaw2 {
			if indexOf(names, k) < 0 {
				return badRequest("baselines: the model has no attributed input %q (it has %s)", k, strings.Join(names, ", "))
			}
			raws[k] = v
		}
	case j.baseRaw != nil:
		var f float64
		if json.Unmarshal(j.baseRaw, &f) == nil {
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return badRequest("baselines=%v: want a finite number", f)
			}
			j.vals["baselines"] = strconv.FormatFloat(f, 'g', -1, 64)
			return nil
		}
		if len(names) != 1 {
			return badRequest("baselines: model %s has %d attributed inputs: give {\"input\": baseline, ...}", j.m.Name, len(names))
		}
		raws[names[0]] = j.baseRaw
	default:
		return nil
	}
	j.baselines = make([]*tensor.Tensor, len(names))
	for i, name := range names {
		raw, ok := raws[name]
		x := j.inputs[indexOf(inputNames(j.m), name)]
		if !ok {
			j.baselines[i] = tensor.Scalar(0)
			if j.spec.Distribution {
				j.baselines[i] = methods.DefaultDistribution([]*tensor.Tensor{x}, 0)[0]
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
		case len(shape) == len(ex) && sameInts(shape, ex):
			shape = append([]int{1}, shape...)
		case len(shape) == len(ex)+1 && sameInts(shape[1:], ex):
		default:
			return badRequest("baselines of %q: shape %v; want a number, one example's shape %v, or rows [K %v]", name, shape, ex, strings.Trim(fmt.Sprint(ex), "[]"))
		}
		if j.baselines[i], err = toTensor(tensor.Float32, shape, vals); err != nil {
			return badRequest("baselines of %q: %v", name, err)
		}
		j.vals["baselines"] = "given"
	}
	return nil
}

func inputNames(m *model) []string {
	out := make([]string, len(m.inputs))
	for i, in := range m.inputs {
		out[i] = in.Name
	}
	return out
}

func sameInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// baselineValue is the constant baseline of a request (0 without one).
func (j *job) baselineValue() float32 {
	v, err := strconv.ParseFloat(j.vals["baselines"], 32)
	if err != nil {
		return 0
	}
	return float32(v)
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
// booleans as such, the rest as text.
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
	if j.layer != "" {
		out["layer"] = j.layer
	}
	if _, ok := out["baselines"]; !ok {
		out["baselines"] = 0.0
	}
	return out
}

// runMethod runs the job's method on the examples explained, as
// explain.Run does (the method table builds it on the network, with the
// request's baselines, or a distribution of zeros and the constant for
// the Shap methods), asking for the convergence delta.
func (s *Server) runMethod(ctx context.Context, j *job) (*attr.Result, error) {
	vals := methods.Values{}
	for k, v := range j.vals {
		if k != "baselines" {
			vals[k] = v
		}
	}
	m, err := j.spec.Build(j.m.nt, j.layer, vals)
	if err != nil {
		return nil, badRequest("%s: %v", j.method, err)
	}
	// The delta of methods that have one (NoiseTunnel's, when its inner
	// method has one; the others ignore Delta).
	delta := j.method != "NoiseTunnel" || j.vals["inner"] == "IntegratedGradients" || j.vals["inner"] == "DeepLift"
	o := attr.Options{Target: j.attrTarget, Additional: j.extra, Delta: delta, Baselines: j.baselines}
	if o.Baselines == nil {
		b := j.baselineValue()
		switch {
		case j.spec.Distribution:
			o.Baselines = methods.DefaultDistribution(j.attributed, b)
		case b != 0:
			for range j.attributed {
				o.Baselines = append(o.Baselines, tensor.Scalar(b))
			}
		}
	}
	res, err := m.Attribute(ctx, j.attributed, o)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return nil, err
		}
		return nil, badRequest("%s: %v", j.method, err)
	}
	return res, nil
}

// takeRows returns the rows of a batch.
func takeRows(t *tensor.Tensor, rows []int) *tensor.Tensor {
	inner := t.Len() / t.Shape[0]
	out := tensor.Zeros(t.DType, append([]int{len(rows)}, t.Shape[1:]...))
	for k, r := range rows {
		switch t.DType {
		case tensor.Float32:
			copy(out.F[k*inner:(k+1)*inner], t.F[r*inner:(r+1)*inner])
		case tensor.Int64:
			copy(out.I[k*inner:(k+1)*inner], t.I[r*inner:(r+1)*inner])
		case tensor.Bool:
			copy(out.B[k*inner:(k+1)*inner], t.B[r*inner:(r+1)*inner])
		}
	}
	return out
}
