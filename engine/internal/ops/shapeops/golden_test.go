package shapeops

import (
	"bytes"
	"encoding/json"
	"os"
	"strconv"
	"testing"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/engine/internal/op/optest"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

type jsonTensor struct {
	DType string        `json:"dtype"`
	Shape []int         `json:"shape"`
	Data  []json.Number `json:"data"`
	Bools []bool        `json:"-"`
}

func (j *jsonTensor) UnmarshalJSON(b []byte) error {
	var raw struct {
		DType string            `json:"dtype"`
		Shape []int             `json:"shape"`
		Data  []json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	j.DType, j.Shape = raw.DType, raw.Shape
	for _, d := range raw.Data {
		switch string(d) {
		case "true", "false":
			j.Bools = append(j.Bools, string(d) == "true")
		default:
			j.Data = append(j.Data, json.Number(d))
		}
	}
	return nil
}

func (j *jsonTensor) tensor(t *testing.T) *tensor.Tensor {
	if j == nil {
		return nil
	}
	switch j.DType {
	case "bool":
		return bt(j.Shape, j.Bools...)
	case "int64":
		x := tensor.NewInt(j.Shape...)
		for i, v := range j.Data {
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			x.I[i] = n
		}
		return x
	}
	x := tensor.New(j.Shape...)
	for i, v := range j.Data {
		f, err := v.Float64()
		if err != nil {
			t.Fatal(err)
		}
		x.F[i] = float32(f)
	}
	return x
}

type jsonAttr struct {
	Type string          `json:"type"`
	V    json.RawMessage `json:"v"`
}

type shapeCase struct {
	Name    string              `json:"name"`
	Op      string              `json:"op"`
	Opset   int                 `json:"opset"`
	Attrs   map[string]jsonAttr `json:"attrs"`
	Inputs  []*jsonTensor       `json:"inputs"`
	Outputs []*jsonTensor       `json:"outputs"`
}

func (c shapeCase) node(t *testing.T) *graph.Node {
	n := mkNode(c.Op)
	n.Outputs = make([]string, len(c.Outputs))
	for i := range n.Outputs {
		n.Outputs[i] = "y" + strconv.Itoa(i)
	}
	for name, a := range c.Attrs {
		var err error
		switch a.Type {
		case "int":
			var v int64
			err = json.Unmarshal(a.V, &v)
			n.Attrs[name] = aInt(name, v)
		case "ints":
			var v []int64
			err = json.Unmarshal(a.V, &v)
			n.Attrs[name] = aInts(name, v...)
		case "float":
			var v float32
			err = json.Unmarshal(a.V, &v)
			n.Attrs[name] = aFloat(name, v)
		case "str":
			var v string
			err = json.Unmarshal(a.V, &v)
			n.Attrs[name] = aStr(name, v)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return n
}

func loadShapeGolden(t *testing.T) []shapeCase {
	t.Helper()
	b, err := os.ReadFile("testdata/shape_golden.json")
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var f struct {
		Cases []shapeCase `json:"cases"`
	}
	if err := d.Decode(&f); err != nil {
		t.Fatal(err)
	}
	return f.Cases
}

func (c shapeCase) inputs(t *testing.T) []*tensor.Tensor {
	in := make([]*tensor.Tensor, len(c.Inputs))
	for i, j := range c.Inputs {
		in[i] = j.tensor(t)
	}
	return in
}

// TestShapeGolden checks every op against numpy (testdata/gen_shape.py),
// and the gradient of every float input of every differentiable op.
func TestShapeGolden(t *testing.T) {
	for _, c := range loadShapeGolden(t) {
		t.Run(c.Name, func(t *testing.T) {
			k := build(t, c.node(t), c.Opset)
			in := c.inputs(t)
			out := run(t, k, in...)
			if len(out) != len(c.Outputs) {
				t.Fatalf("%d outputs, want %d", len(out), len(c.Outputs))
			}
			for j, o := range c.Outputs {
				want(t, "output "+strconv.Itoa(j), out[j], o.tensor(t), 1e-6)
			}
			// The inputs are untouched.
			for i, x := range c.inputs(t) {
				if x != nil {
					want(t, "input "+strconv.Itoa(i), in[i], x, 0)
				}
			}
			if _, ok := k.(op.Differentiable); !ok || out[0].DType != tensor.Float32 {
				return
			}
			var wrt []int
			for i, x := range in {
				if x != nil && x.DType == tensor.Float32 {
					wrt = append(wrt, i)
				}
			}
			if len(wrt) > 0 && in[0].Len() > 0 {
				optest.GradCheck(t, k, in, wrt, optest.Options{Seed: 5})
			}
		})
	}
}
