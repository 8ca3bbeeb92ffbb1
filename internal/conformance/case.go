// Package conformance checks loupe against answers recorded from Captum: it
// reads the oracle's case files (the schema is in
// testdata/oracle/ORACLE_README.md), runs each model on the case's inputs
// and each algorithm with the case's parameters, and compares the results
// with the case's own tolerances.
package conformance

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/loupe-ml/loupe/tensor"
)

// Case is one recorded Captum run.
type Case struct {
	ID              string                     `json:"id"`
	Algorithm       string                     `json:"algorithm"`
	Model           *CaseModel                 `json:"model"`
	Constructor     json.RawMessage            `json:"constructor"`
	Layer           *CaseLayer                 `json:"layer"`
	RawInputs       []json.RawMessage          `json:"inputs"`
	InputsIsTuple   bool                       `json:"inputs_is_tuple"`
	Params          map[string]json.RawMessage `json:"params"`
	EffectiveParams map[string]json.RawMessage `json:"effective_params"`
	RawForward      json.RawMessage            `json:"forward_output"`
	Expected        json.RawMessage            `json:"expected"`
	Checks          []json.RawMessage          `json:"checks"`
	RandomDraws     json.RawMessage            `json:"random_draws"`
	MetricInputs    json.RawMessage            `json:"metric_inputs"`
	Notes           string                     `json:"notes"`
	// InputsLabelsLast marks influence cases whose last input holds the
	// labels (Captum's (x, y) convention), which the model is not fed.
	InputsLabelsLast bool `json:"inputs_labels_last"`
	// FullGradLayers lists the layers of a FullGrad case (CAM group).
	FullGradLayers json.RawMessage `json:"fullgrad_layers"`

	// Dir is the folder the case's relative paths start from.
	Dir string `json:"-"`
}

// CaseModel names the model of a case and how its ONNX inputs are fed.
type CaseModel struct {
	Name                       string   `json:"name"`
	ONNX                       string   `json:"onnx"`
	ONNXInputs                 []string `json:"onnx_inputs"`
	ONNXInputDTypes            []string `json:"onnx_input_dtypes"`
	AttributedInputs           []string `json:"attributed_inputs"`
	AdditionalForwardArgInputs []string `json:"additional_forward_args_inputs"`
	ONNXOutput                 string   `json:"onnx_output"`
}

// CaseLayer is the layer a layer or neuron method refers to.
type CaseLayer struct {
	Module                string `json:"module"`
	ONNXTensor            string `json:"onnx_tensor"`
	ONNXOutputTensor      string `json:"onnx_output_tensor"`
	AttributeToLayerInput bool   `json:"attribute_to_layer_input"`
}

// LoadCases reads every case of a folder: those index.json lists, or every
// *.json file but index.json and torch_bench.json when there is no index.
func LoadCases(dir string) ([]*Case, error) {
	var files []string
	if b, err := os.ReadFile(filepath.Join(dir, "index.json")); err == nil {
		var idx struct {
			Cases []struct {
				File string `json:"file"`
			} `json:"cases"`
		}
		if err := json.Unmarshal(b, &idx); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "index.json"), err)
		}
		for _, c := range idx.Cases {
			files = append(files, filepath.Join(dir, c.File))
		}
	} else {
		all, err := filepath.Glob(filepath.Join(dir, "*.json"))
		if err != nil {
			return nil, err
		}
		for _, f := range all {
			switch filepath.Base(f) {
			case "index.json", "torch_bench.json":
				continue
			}
			files = append(files, f)
		}
	}
	sort.Strings(files)
	cases := make([]*Case, 0, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		c := &Case{Dir: dir}
		if err := json.Unmarshal(b, c); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if c.ID == "" {
			c.ID = strings.TrimSuffix(filepath.Base(f), ".json")
		}
		cases = append(cases, c)
	}
	if len(cases) == 0 {
		return nil, fmt.Errorf("no cases in %s", dir)
	}
	return cases, nil
}

// jsonTensor is the oracle's tensor object.
type jsonTensor struct {
	DType  string    `json:"dtype"`
	Shape  []int     `json:"shape"`
	Data   []float64 `json:"data"`
	File   string    `json:"file"`
	SHA256 string    `json:"sha256"`
}

// IsTensor reports whether raw is an oracle tensor object.
func IsTensor(raw json.RawMessage) bool {
	var probe struct {
		DType string `json:"dtype"`
		Shape []int  `json:"shape"`
	}
	return len(raw) > 0 && raw[0] == '{' && json.Unmarshal(raw, &probe) == nil && probe.DType != "" && probe.Shape != nil
}

// Tensor decodes an oracle tensor object; blobs are read relative to c.Dir
// and their checksums verified.
func (c *Case) Tensor(raw json.RawMessage) (*tensor.Tensor, error) {
	var jt jsonTensor
	if err := json.Unmarshal(raw, &jt); err != nil {
		return nil, fmt.Errorf("tensor: %w", err)
	}
	n := tensor.Size(jt.Shape)
	var vals []float64
	if jt.File != "" {
		b, err := os.ReadFile(filepath.Join(c.Dir, jt.File))
		if err != nil {
			return nil, err
		}
		if jt.SHA256 != "" {
			sum := sha256.Sum256(b)
			if hex.EncodeToString(sum[:]) != jt.SHA256 {
				return nil, fmt.Errorf("%s: checksum mismatch", jt.File)
			}
		}
		size := 4
		if strings.HasSuffix(jt.File, ".i64.bin") {
			size = 8
		}
		if len(b) != n*size {
			return nil, fmt.Errorf("%s: %d bytes for shape %v", jt.File, len(b), jt.Shape)
		}
		vals = make([]float64, n)
		for i := range vals {
			if size == 8 {
				vals[i] = float64(int64(binary.LittleEndian.Uint64(b[8*i:])))
			} else {
				vals[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])))
			}
		}
	} else {
		vals = jt.Data
	}
	if len(vals) != n {
		return nil, fmt.Errorf("tensor of shape %v has %d values", jt.Shape, len(vals))
	}
	switch jt.DType {
	case "float32", "float64":
		t := tensor.New(jt.Shape...)
		for i, v := range vals {
			t.F[i] = float32(v)
		}
		return t, nil
	case "int64":
		t := tensor.NewInt(jt.Shape...)
		for i, v := range vals {
			t.I[i] = int64(v)
		}
		return t, nil
	case "bool":
		t := tensor.NewBool(jt.Shape...)
		for i, v := range vals {
			t.B[i] = v != 0
		}
		return t, nil
	}
	return nil, fmt.Errorf("unknown dtype %q", jt.DType)
}

// Inputs decodes the case's attributed inputs.
func (c *Case) Inputs() ([]*tensor.Tensor, error) {
	out := make([]*tensor.Tensor, len(c.RawInputs))
	for i, raw := range c.RawInputs {
		t, err := c.Tensor(raw)
		if err != nil {
			return nil, fmt.Errorf("input %d: %w", i, err)
		}
		out[i] = t
	}
	return out, nil
}

// AdditionalArgs decodes params.additional_forward_args (nil when absent).
func (c *Case) AdditionalArgs() ([]*tensor.Tensor, error) {
	raw, ok := c.Params["additional_forward_args"]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		list = []json.RawMessage{raw}
	}
	out := make([]*tensor.Tensor, len(list))
	for i, r := range list {
		t, err := c.Tensor(r)
		if err != nil {
			return nil, fmt.Errorf("additional_forward_args[%d]: %w", i, err)
		}
		out[i] = t
	}
	return out, nil
}

// Feeds returns the ONNX inputs of the case by name: the attributed inputs
// and the additional forward arguments.
func (c *Case) Feeds() (map[string]*tensor.Tensor, error) {
	if c.Model == nil {
		return nil, fmt.Errorf("case has no model")
	}
	in, err := c.Inputs()
	if err != nil {
		return nil, err
	}
	if c.InputsLabelsLast && len(in) > 0 {
		in = in[:len(in)-1]
	}
	extra, err := c.AdditionalArgs()
	if err != nil {
		return nil, err
	}
	if len(in) != len(c.Model.AttributedInputs) {
		return nil, fmt.Errorf("%d inputs for %d attributed inputs", len(in), len(c.Model.AttributedInputs))
	}
	if len(extra) != len(c.Model.AdditionalForwardArgInputs) {
		return nil, fmt.Errorf("%d additional_forward_args for inputs %v", len(extra), c.Model.AdditionalForwardArgInputs)
	}
	feeds := map[string]*tensor.Tensor{}
	for i, name := range c.Model.AttributedInputs {
		feeds[name] = in[i]
	}
	for i, name := range c.Model.AdditionalForwardArgInputs {
		feeds[name] = extra[i]
	}
	return feeds, nil
}

// ModelPath returns the path of the case's ONNX file.
func (c *Case) ModelPath() string { return filepath.Join(c.Dir, c.Model.ONNX) }

// ForwardOutput decodes the recorded model output.
func (c *Case) ForwardOutput() (*tensor.Tensor, error) { return c.Tensor(c.RawForward) }

// ExactTols returns the tolerances of an "exact" or "replay" check for a
// field ("attributions" gives one per tensor, "delta" one).
func (c *Case) ExactTols(field string) ([]Tol, error) {
	for _, raw := range c.Checks {
		var chk struct {
			Kind   string                     `json:"kind"`
			Fields map[string]json.RawMessage `json:"fields"`
		}
		if err := json.Unmarshal(raw, &chk); err != nil {
			return nil, err
		}
		if chk.Kind != "exact" && chk.Kind != "replay" {
			continue
		}
		f, ok := chk.Fields[field]
		if !ok {
			continue
		}
		var list []Tol
		if err := json.Unmarshal(f, &list); err == nil {
			return list, nil
		}
		var one Tol
		if err := json.Unmarshal(f, &one); err != nil {
			return nil, err
		}
		return []Tol{one}, nil
	}
	return nil, fmt.Errorf("no exact check for %q", field)
}
