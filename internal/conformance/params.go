package conformance

import (
	"encoding/json"
	"fmt"

	"github.com/loupe-ml/loupe/tensor"
)

// Has reports whether params holds a non-null value for key.
func (c *Case) Has(key string) bool {
	raw, ok := c.Params[key]
	return ok && string(raw) != "null"
}

// Int returns params[key] as an int, or def when absent or null.
func (c *Case) Int(key string, def int) (int, error) {
	return decode(c.Params, "param", key, def)
}

// Float returns params[key] as a float64, or def when absent or null.
func (c *Case) Float(key string, def float64) (float64, error) {
	return decode(c.Params, "param", key, def)
}

// Bool returns params[key] as a bool, or def when absent or null.
func (c *Case) Bool(key string, def bool) (bool, error) {
	return decode(c.Params, "param", key, def)
}

// String returns params[key] as a string, or def when absent or null.
func (c *Case) String(key string, def string) (string, error) {
	return decode(c.Params, "param", key, def)
}

// ConstructorBool returns constructor[key] as a bool, or def when absent
// or null (or when the constructor is not a JSON object).
func (c *Case) ConstructorBool(key string, def bool) (bool, error) {
	var m map[string]json.RawMessage
	if len(c.Constructor) == 0 || json.Unmarshal(c.Constructor, &m) != nil {
		return def, nil
	}
	return decode(m, "constructor", key, def)
}

// decode returns m[key] decoded as a T, or def when absent or null; an
// error names the value as what and key.
func decode[T any](m map[string]json.RawMessage, what, key string, def T) (T, error) {
	raw, ok := m[key]
	if !ok || string(raw) == "null" {
		return def, nil
	}
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		var zero T
		return zero, fmt.Errorf("%s %s: %w", what, key, err)
	}
	return v, nil
}

// TargetSpec is a decoded target parameter: nil (none), one index tuple for
// every example, or one per example.
type TargetSpec struct {
	All  []int
	Each [][]int
}

// Target decodes params.target.
func (c *Case) Target() (TargetSpec, error) {
	if !c.Has("target") {
		return TargetSpec{}, nil
	}
	raw := c.Params["target"]
	var one int
	if json.Unmarshal(raw, &one) == nil {
		return TargetSpec{All: []int{one}}, nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return TargetSpec{}, fmt.Errorf("target %s: %w", raw, err)
	}
	var ts TargetSpec
	for _, r := range list {
		if json.Unmarshal(r, &one) == nil {
			ts.Each = append(ts.Each, []int{one})
			continue
		}
		var tup []int
		if err := json.Unmarshal(r, &tup); err != nil {
			return TargetSpec{}, fmt.Errorf("target %s: %w", raw, err)
		}
		ts.Each = append(ts.Each, tup)
	}
	return ts, nil
}

// TensorList decodes a parameter that is a tensor, a number, or a list of
// them (one per input): nil entries stand for null. n is the number of
// inputs, used when a single value applies to all of them.
func (c *Case) TensorList(key string, n int) ([]*tensor.Tensor, error) {
	if !c.Has(key) {
		return nil, nil
	}
	raw := c.Params[key]
	one := func(r json.RawMessage) (*tensor.Tensor, error) {
		if string(r) == "null" {
			return nil, nil
		}
		var f float64
		if json.Unmarshal(r, &f) == nil {
			return tensor.Scalar(float32(f)), nil
		}
		return c.Tensor(r)
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) == nil {
		out := make([]*tensor.Tensor, len(list))
		for i, r := range list {
			t, err := one(r)
			if err != nil {
				return nil, fmt.Errorf("param %s[%d]: %w", key, i, err)
			}
			out[i] = t
		}
		return out, nil
	}
	t, err := one(raw)
	if err != nil {
		return nil, fmt.Errorf("param %s: %w", key, err)
	}
	out := make([]*tensor.Tensor, n)
	for i := range out {
		out[i] = t
	}
	return out, nil
}

// ExpectedAttributions decodes expected.attributions and expected.delta.
func (c *Case) ExpectedAttributions() ([]*tensor.Tensor, *tensor.Tensor, error) {
	var exp struct {
		Attributions []json.RawMessage `json:"attributions"`
		Delta        json.RawMessage   `json:"delta"`
	}
	if err := json.Unmarshal(c.Expected, &exp); err != nil {
		return nil, nil, fmt.Errorf("expected: %w", err)
	}
	attrs := make([]*tensor.Tensor, len(exp.Attributions))
	for i, r := range exp.Attributions {
		t, err := c.Tensor(r)
		if err != nil {
			return nil, nil, fmt.Errorf("expected attribution %d: %w", i, err)
		}
		attrs[i] = t
	}
	var delta *tensor.Tensor
	if len(exp.Delta) > 0 && string(exp.Delta) != "null" {
		t, err := c.Tensor(exp.Delta)
		if err != nil {
			return nil, nil, fmt.Errorf("expected delta: %w", err)
		}
		delta = t
	}
	return attrs, delta, nil
}

// Floats returns params[key] as a list of floats (a single number gives a
// list of one), or nil when absent.
func (c *Case) Floats(key string) ([]float64, error) {
	if !c.Has(key) {
		return nil, nil
	}
	var one float64
	if json.Unmarshal(c.Params[key], &one) == nil {
		return []float64{one}, nil
	}
	var list []float64
	if err := json.Unmarshal(c.Params[key], &list); err != nil {
		return nil, fmt.Errorf("param %s: %w", key, err)
	}
	return list, nil
}
