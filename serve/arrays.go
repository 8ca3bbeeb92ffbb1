package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/loupe-ml/loupe/tensor"
)

// errTooMany is the error of an array with more elements than allowed.
var errTooMany = errors.New("too many elements")

// flatten reads a JSON number or nested arrays of numbers (regular: every
// array at one depth has the same length) into its shape and values, in
// row-major order; it stops with errTooMany past limit values. It streams
// the tokens, so an array costs its values, not a tree of interfaces.
func flatten(raw json.RawMessage, limit int) (shape []int, vals []float64, err error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil, errors.New("missing")
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var lens []int  // the length of each open array
	var known []int // the length every array at a depth must have (-1: not yet seen)
	depth := 0      // depth of the first number, once seen
	seen := false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("not an array of numbers: %v", err)
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '[':
				if seen && len(lens) >= depth {
					return nil, nil, errors.New("arrays nested unevenly")
				}
				if len(lens) > 0 {
					lens[len(lens)-1]++
				}
				lens = append(lens, 0)
				if len(known) < len(lens) {
					known = append(known, -1)
				}
			case ']':
				l := len(lens) - 1
				if known[l] == -1 {
					known[l] = lens[l]
				} else if known[l] != lens[l] {
					return nil, nil, fmt.Errorf("arrays of different lengths (%d and %d) at depth %d", known[l], lens[l], l+1)
				}
				if lens[l] == 0 && !seen {
					return nil, nil, errors.New("an empty array")
				}
				lens = lens[:l]
			default:
				return nil, nil, errors.New("not an array of numbers: an object")
			}
		case json.Number:
			if !seen {
				seen, depth = true, len(lens)
			} else if len(lens) != depth {
				return nil, nil, errors.New("arrays nested unevenly")
			}
			if len(lens) > 0 {
				lens[len(lens)-1]++
			}
			if len(vals) >= limit {
				return nil, nil, errTooMany
			}
			v, err := t.Float64()
			if err != nil {
				return nil, nil, fmt.Errorf("number %s: %v", t, err)
			}
			vals = append(vals, v)
		default:
			return nil, nil, fmt.Errorf("not an array of numbers: %v", tok)
		}
	}
	if !seen {
		return nil, nil, errors.New("no numbers")
	}
	return known[:depth], vals, nil
}

// toTensor makes a tensor of a type from flattened values.
func toTensor(dt tensor.DType, shape []int, vals []float64) (*tensor.Tensor, error) {
	t := tensor.Zeros(dt, shape)
	switch dt {
	case tensor.Float32:
		for i, v := range vals {
			t.F[i] = float32(v)
		}
	case tensor.Int64:
		for i, v := range vals {
			if v != math.Trunc(v) || math.Abs(v) > 1<<53 {
				return nil, fmt.Errorf("%g is not an integer", v)
			}
			t.I[i] = int64(v)
		}
	case tensor.Bool:
		for i, v := range vals {
			t.B[i] = v != 0
		}
	default:
		return nil, fmt.Errorf("inputs of type %v are not served", dt)
	}
	return t, nil
}

// appendNested writes values of a shape as nested JSON arrays (a number
// for shape []). Floats that JSON cannot hold (NaN, infinities) are null.
func appendNested(b []byte, t *tensor.Tensor, off int, shape []int) []byte {
	if len(shape) == 0 {
		return appendValue(b, t, off)
	}
	inner := 1
	for _, d := range shape[1:] {
		inner *= d
	}
	b = append(b, '[')
	for i := 0; i < shape[0]; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendNested(b, t, off+i*inner, shape[1:])
	}
	return append(b, ']')
}

// appendValue writes element i of a tensor.
func appendValue(b []byte, t *tensor.Tensor, i int) []byte {
	switch t.DType {
	case tensor.Float32:
		v := float64(t.F[i])
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return append(b, "null"...)
		}
		return strconv.AppendFloat(b, v, 'g', -1, 32)
	case tensor.Int64:
		return strconv.AppendInt(b, t.I[i], 10)
	case tensor.Bool:
		return strconv.AppendBool(b, t.B[i])
	}
	return append(b, "null"...)
}

// nested is a tensor's example (or all of it, at -1) as nested arrays,
// for json.Marshal.
type nested struct {
	t       *tensor.Tensor
	example int // -1: the whole tensor
}

func (n nested) MarshalJSON() ([]byte, error) {
	if n.t == nil {
		return []byte("null"), nil
	}
	if n.example < 0 {
		return appendNested(nil, n.t, 0, n.t.Shape), nil
	}
	inner := 1
	for _, d := range n.t.Shape[1:] {
		inner *= d
	}
	return appendNested(nil, n.t, n.example*inner, n.t.Shape[1:]), nil
}

// flat is a tensor's values as one JSON array (the Open Inference
// Protocol's data).
type flat struct{ t *tensor.Tensor }

func (f flat) MarshalJSON() ([]byte, error) {
	b := []byte{'['}
	for i := 0; i < f.t.Len(); i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendValue(b, f.t, i)
	}
	return append(b, ']'), nil
}
