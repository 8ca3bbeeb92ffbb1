package serve

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/tensor"
)

// The Open Inference Protocol (KServe V2): model metadata and inference.

// v2Tensor is a tensor of the Open Inference Protocol.
type v2Tensor struct {
	Name       string          `json:"name"`
	Shape      []int           `json:"shape"`
	Datatype   string          `json:"datatype"`
	Data       json.RawMessage `json:"data"`
	Parameters json.RawMessage `json:"parameters,omitempty"`
}

// v2Request is an inference request.
type v2Request struct {
	ID         string        `json:"id,omitempty"`
	Inputs     []v2Tensor    `json:"inputs"`
	Outputs    []v2Output    `json:"outputs,omitempty"`
	Parameters *v2Parameters `json:"parameters,omitempty"`
}

type v2Output struct {
	Name       string          `json:"name"`
	Parameters json.RawMessage `json:"parameters,omitempty"`
}

// v2Parameters are the request's parameters loupe reads.
type v2Parameters struct {
	DeadlineMS *int64 `json:"deadline_ms,omitempty"`
}

// v2Out is an output tensor of the answer.
type v2Out struct {
	Name     string `json:"name"`
	Shape    []int  `json:"shape"`
	Datatype string `json:"datatype"`
	Data     flat   `json:"data"`
}

var datatypes = map[tensor.DType]string{tensor.Float32: "FP32", tensor.Int64: "INT64", tensor.Bool: "BOOL"}

// datatypeOf names a type as the protocol does.
func datatypeOf(dt tensor.DType) string {
	if s, ok := datatypes[dt]; ok {
		return s
	}
	return strings.ToUpper(dt.String())
}

type v2TensorMeta struct {
	Name     string `json:"name"`
	Datatype string `json:"datatype"`
	Shape    []int  `json:"shape"`
}

// v2Metadata is the model's metadata: its inputs and outputs (-1 for
// dimensions it leaves open).
func (m *model) v2Metadata() map[string]any {
	var ins, outs []v2TensorMeta
	for _, in := range m.inputs {
		shape := []int{}
		for _, d := range in.Shape {
			shape = append(shape, dimValue(d))
		}
		ins = append(ins, v2TensorMeta{in.Name, datatypeOf(in.DType), shape})
	}
	for _, o := range m.Model.Model.OutputNames() {
		outs = append(outs, v2TensorMeta{Name: o, Datatype: "FP32", Shape: []int{}})
	}
	return map[string]any{"name": m.Name, "versions": []string{}, "platform": "onnx", "inputs": ins, "outputs": outs}
}

// v2Infer answers POST /v2/models/NAME/infer.
func (s *Server) v2Infer(w http.ResponseWriter, r *http.Request, name string) {
	var req v2Request
	x, m := s.begin(w, r, name, "infer", &req)
	defer x.end()
	if m == nil {
		return
	}
	var ms *int64
	if req.Parameters != nil {
		ms = req.Parameters.DeadlineMS
	}
	var err error
	if x.deadline, err = s.deadline(ms); err != nil {
		x.fail(err)
		return
	}
	feeds, err := m.v2Inputs(req, s.cfg)
	if err != nil {
		x.fail(err)
		return
	}
	outNames := m.Model.Model.OutputNames()
	if len(req.Outputs) > 0 {
		outNames = nil
		for _, o := range req.Outputs {
			if slices.Index(m.Model.Model.OutputNames(), o.Name) < 0 {
				x.fail(badRequest("model %s has no output %q (it has %s)", m.Name, o.Name, strings.Join(m.Model.Model.OutputNames(), ", ")))
				return
			}
			outNames = append(outNames, o.Name)
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), x.deadline)
	defer cancel()
	v, err := s.do(ctx, func(ctx context.Context) (any, error) {
		p, err := m.Model.Model.Forward(ctx, feeds, &engine.Options{Outputs: outNames})
		if err != nil {
			return nil, err
		}
		outs := make([]v2Out, len(outNames))
		for i, n := range outNames {
			t, err := p.Value(n)
			if err != nil {
				return nil, err
			}
			outs[i] = v2Out{Name: n, Shape: append([]int{}, t.Shape...), Datatype: datatypeOf(t.DType), Data: flat{t}}
		}
		return outs, nil
	})
	if err != nil {
		x.fail(err)
		return
	}
	ans := map[string]any{"model_name": m.Name, "outputs": v}
	if req.ID != "" {
		ans["id"] = req.ID
	}
	writeJSON(w, http.StatusOK, ans)
}

// v2Inputs reads an inference request's inputs: each of the model's once,
// its data (flat, or nested) matching its shape, datatype and the model's
// input shape.
func (m *model) v2Inputs(req v2Request, c Config) (map[string]*tensor.Tensor, error) {
	names := m.inputNames()
	feeds := map[string]*tensor.Tensor{}
	n := -1
	for _, t := range req.Inputs {
		i := slices.Index(names, t.Name)
		if i < 0 {
			return nil, badRequest("model %s has no input %q (it takes %s)", m.Name, t.Name, strings.Join(names, ", "))
		}
		if feeds[t.Name] != nil {
			return nil, badRequest("input %q given twice", t.Name)
		}
		in := m.inputs[i]
		if dt := datatypeOf(in.DType); !strings.EqualFold(t.Datatype, dt) {
			return nil, badRequest("input %q: datatype %q; the model takes %s", t.Name, t.Datatype, dt)
		}
		want := exampleShape(in)
		if len(t.Shape) == 0 {
			return nil, badRequest("input %q: no shape; the model takes %s", t.Name, showShape(want))
		}
		ok := want == nil || len(t.Shape) == len(want)+1
		for k := 0; ok && want != nil && k < len(want); k++ {
			ok = want[k] < 0 || want[k] == t.Shape[k+1]
		}
		size := 1
		for _, d := range t.Shape {
			ok = ok && d > 0
			size *= max(d, 1)
		}
		if !ok {
			return nil, badRequest("input %q: shape %v; the model takes %s", t.Name, t.Shape, showShape(want))
		}
		if t.Shape[0] > c.MaxExamples {
			return nil, tooLarge("input %q: %d examples; at most %d per request", t.Name, t.Shape[0], c.MaxExamples)
		}
		limit := limitOf(want, c)
		if size > limit {
			return nil, tooLarge("input %q: shape %v holds more than %d values", t.Name, t.Shape, limit)
		}
		_, vals, err := flatten(t.Data, size)
		if err != nil {
			return nil, badRequest("input %q: data: %v (want %d numbers for shape %v)", t.Name, err, size, t.Shape)
		}
		if len(vals) != size {
			return nil, badRequest("input %q: %d numbers for shape %v (want %d)", t.Name, len(vals), t.Shape, size)
		}
		x, err := toTensor(in.DType, t.Shape, vals)
		if err != nil {
			return nil, badRequest("input %q: %v", t.Name, err)
		}
		if n >= 0 && t.Shape[0] != n {
			return nil, badRequest("input %q has %d examples, the others %d", t.Name, t.Shape[0], n)
		}
		n = t.Shape[0]
		feeds[t.Name] = x
	}
	for _, nm := range names {
		if feeds[nm] == nil {
			return nil, badRequest("input %q is missing (model %s takes %s)", nm, m.Name, strings.Join(names, ", "))
		}
	}
	return feeds, nil
}
