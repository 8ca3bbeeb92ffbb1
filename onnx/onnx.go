// Package onnx reads ONNX model files (the protobuf ModelProto) into the
// graph form of package graph. It decodes the protobuf wire format itself,
// with bounds checks on every read, so a corrupt or truncated file gives an
// error that says what was being read, never a panic.
//
// Tensors of type float, double, float16 and bfloat16 become float32; the
// integer types become int64; bool stays bool. String tensors, sparse
// initializers and tensors whose data lives in an external file are
// refused with an error that names them.
package onnx

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/internal/fileio"
	"github.com/loupe-ml/loupe/tensor"
)

// ONNX TensorProto data types.
const (
	typeFloat    = 1
	typeUint8    = 2
	typeInt8     = 3
	typeUint16   = 4
	typeInt16    = 5
	typeInt32    = 6
	typeInt64    = 7
	typeString   = 8
	typeBool     = 9
	typeFloat16  = 10
	typeDouble   = 11
	typeUint32   = 12
	typeUint64   = 13
	typeBfloat16 = 16
)

// maxElements bounds the element count of one tensor (guards against
// corrupt dimensions that would overflow or exhaust memory).
const maxElements = 1 << 34

// MaxFileSize is the largest model file ReadFile reads: protobuf messages
// are limited to 2 GiB (larger models keep their weights in external
// files, which loupe does not read).
const MaxFileSize = 2 << 30

// ReadFile reads and parses the ONNX model in file path. It refuses what
// is not a regular file (a FIFO would hang the read, a device such as
// /dev/zero never ends) and files over MaxFileSize, before reading them.
func ReadFile(path string) (*graph.Graph, error) {
	f, st, err := fileio.OpenRegular(path)
	if err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	defer f.Close()
	if st.Size() > MaxFileSize {
		return nil, fmt.Errorf("onnx: %s: %d bytes, more than the %d a protobuf message may hold", path, st.Size(), int64(MaxFileSize))
	}
	// Read the size the file has (in one buffer: io.ReadAll would grow
	// its buffer several times, doubling the memory a large model takes to
	// load), and no more than the limit even if the file grows meanwhile.
	var buf bytes.Buffer
	buf.Grow(int(st.Size()) + bytes.MinRead)
	_, err = buf.ReadFrom(io.LimitReader(f, MaxFileSize+1))
	b := buf.Bytes()
	if err != nil {
		return nil, fmt.Errorf("onnx: %s: %w", path, err)
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("onnx: %s: more than %d bytes", path, int64(MaxFileSize))
	}
	g, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("onnx: %s: %w", path, err)
	}
	return g, nil
}

// Parse parses a serialized ONNX ModelProto.
func Parse(b []byte) (*graph.Graph, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("empty model file")
	}
	r := &reader{b: b}
	g := &graph.Graph{Initializers: map[string]*tensor.Tensor{}, Opsets: map[string]int{}}
	var graphMsg *reader
	// Not r.each: a broken field key reads as "model: ...", while each
	// field's own error names the field.
	for {
		f, wt, ok, err := r.next()
		if err != nil {
			return nil, fmt.Errorf("model: %w", err)
		}
		if !ok {
			break
		}
		switch f {
		case 7:
			if graphMsg, err = r.sub(wt); err != nil {
				return nil, fmt.Errorf("model graph: %w", err)
			}
		case 8:
			s, err := r.sub(wt)
			if err != nil {
				return nil, fmt.Errorf("model opset_import: %w", err)
			}
			dom, ver, err := parseOpset(s)
			if err != nil {
				return nil, fmt.Errorf("model opset_import: %w", err)
			}
			g.Opsets[dom] = int(ver)
		default:
			if err := r.skip(wt); err != nil {
				return nil, fmt.Errorf("model field %d: %w", f, err)
			}
		}
	}
	if graphMsg == nil {
		return nil, fmt.Errorf("not an ONNX model: no graph")
	}
	if err := parseGraph(graphMsg, g); err != nil {
		return nil, fmt.Errorf("graph: %w", err)
	}
	if len(g.Opsets) == 0 {
		// Models from before opset imports existed are opset 1; we cannot
		// run those, so say so instead of guessing.
		return nil, fmt.Errorf("model declares no opset_import")
	}
	return g, nil
}

// parseOpset reads an OperatorSetIdProto: the domain and its version.
func parseOpset(r *reader) (dom string, ver int64, err error) {
	err = r.each(func(f, wt int) (err error) {
		switch f {
		case 1:
			dom, err = r.str(wt)
		case 2:
			ver, err = r.int(wt)
		default:
			err = r.skip(wt)
		}
		return err
	})
	return dom, ver, err
}

// parseGraph reads a GraphProto into g.
func parseGraph(r *reader, g *graph.Graph) error {
	var inputs []graph.ValueInfo
	err := r.each(func(f, wt int) (err error) {
		switch f {
		case 1:
			s, err := r.sub(wt)
			if err != nil {
				return fmt.Errorf("node %d: %w", len(g.Nodes), err)
			}
			n, err := parseNode(s)
			if err != nil {
				return fmt.Errorf("node %d (%q): %w", len(g.Nodes), n.Name, err)
			}
			g.Nodes = append(g.Nodes, n)
		case 2:
			if g.Name, err = r.str(wt); err != nil {
				return fmt.Errorf("name: %w", err)
			}
		case 5:
			s, err := r.sub(wt)
			if err != nil {
				return fmt.Errorf("initializer %d: %w", len(g.Initializers), err)
			}
			name, t, err := parseTensor(s)
			if err != nil {
				return fmt.Errorf("initializer %q: %w", name, err)
			}
			g.Initializers[name] = t
		case 15:
			return fmt.Errorf("sparse initializers are not supported")
		case 11, 12, 13:
			s, err := r.sub(wt)
			if err != nil {
				return fmt.Errorf("value info: %w", err)
			}
			vi, err := parseValueInfo(s)
			if err != nil {
				return fmt.Errorf("value info %q: %w", vi.Name, err)
			}
			switch f {
			case 11:
				inputs = append(inputs, vi)
			case 12:
				g.Outputs = append(g.Outputs, vi)
			default:
				g.ValueInfo = append(g.ValueInfo, vi)
			}
		default:
			if err := r.skip(wt); err != nil {
				return fmt.Errorf("field %d: %w", f, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Older exporters list initializers among the inputs too.
	for _, vi := range inputs {
		if _, ok := g.Initializers[vi.Name]; !ok {
			g.Inputs = append(g.Inputs, vi)
		}
	}
	return nil
}

// parseNode reads a NodeProto. On an error the node holds what was read
// (its name, for the message).
func parseNode(r *reader) (*graph.Node, error) {
	n := &graph.Node{Attrs: map[string]*graph.Attr{}}
	err := r.each(func(f, wt int) (err error) {
		switch f {
		case 1:
			s, err := r.str(wt)
			if err != nil {
				return fmt.Errorf("input: %w", err)
			}
			n.Inputs = append(n.Inputs, s)
		case 2:
			s, err := r.str(wt)
			if err != nil {
				return fmt.Errorf("output: %w", err)
			}
			n.Outputs = append(n.Outputs, s)
		case 3:
			n.Name, err = r.str(wt)
		case 4:
			n.OpType, err = r.str(wt)
		case 7:
			n.Domain, err = r.str(wt)
		case 5:
			s, err := r.sub(wt)
			if err != nil {
				return fmt.Errorf("attribute: %w", err)
			}
			a, err := parseAttr(s)
			if err != nil {
				return fmt.Errorf("attribute %q: %w", a.Name, err)
			}
			n.Attrs[a.Name] = a
		default:
			err = r.skip(wt)
		}
		return err
	})
	return n, err
}

// parseAttr reads an AttributeProto. On an error the attribute holds what
// was read (its name, for the message).
func parseAttr(r *reader) (*graph.Attr, error) {
	a := &graph.Attr{}
	var declared int64 = -1
	err := r.each(func(f, wt int) (err error) {
		switch f {
		case 1:
			a.Name, err = r.str(wt)
		case 20:
			declared, err = r.int(wt)
		case 2:
			if wt != wireFixed32 {
				return fmt.Errorf("wire type %d for a float", wt)
			}
			var v uint32
			v, err = r.fixed32()
			a.F = math.Float32frombits(v)
			a.Type = graph.AttrFloat
		case 3:
			a.I, err = r.int(wt)
			a.Type = graph.AttrInt
		case 4:
			a.S, err = r.str(wt)
			a.Type = graph.AttrString
		case 5:
			var s *reader
			if s, err = r.sub(wt); err == nil {
				_, a.T, err = parseTensor(s)
			}
			a.Type = graph.AttrTensor
		case 6:
			err = r.skip(wt)
			a.Type = graph.AttrGraph
		case 7:
			a.Floats, err = r.float32s(wt, a.Floats)
			a.Type = graph.AttrFloats
		case 8:
			a.Ints, err = r.int64s(wt, a.Ints)
			a.Type = graph.AttrInts
		case 9:
			var s string
			s, err = r.str(wt)
			a.Strings = append(a.Strings, s)
			a.Type = graph.AttrStrings
		default:
			err = r.skip(wt)
		}
		return err
	})
	if err != nil {
		return a, err
	}
	// The declared type wins when a list is empty (no elements to infer it from).
	switch declared {
	case 6:
		a.Type = graph.AttrFloats
	case 7:
		a.Type = graph.AttrInts
	case 8:
		a.Type = graph.AttrStrings
	case 1, 2, 3, 4, 5:
		if a.Type == graph.AttrUndefined {
			a.Type = graph.AttrType(declared)
		}
	}
	return a, nil
}

// parseValueInfo reads a ValueInfoProto: a name, and the element type and
// shape when it is a tensor.
func parseValueInfo(r *reader) (vi graph.ValueInfo, err error) {
	err = r.each(func(f, wt int) (err error) {
		switch f {
		case 1:
			vi.Name, err = r.str(wt)
		case 2:
			var s *reader
			if s, err = r.sub(wt); err == nil {
				err = parseType(s, &vi)
			}
		default:
			err = r.skip(wt)
		}
		return err
	})
	return vi, err
}

// parseType reads a TypeProto into vi; only tensor types are read.
func parseType(r *reader, vi *graph.ValueInfo) error {
	return r.eachSub(1, func(s *reader) error {
		return s.each(func(f, wt int) (err error) {
			switch f {
			case 1:
				var et int64
				if et, err = s.int(wt); err == nil {
					vi.DType, _ = dtypeOf(et)
				}
			case 2:
				var sh *reader
				if sh, err = s.sub(wt); err == nil {
					vi.Shape, err = parseShape(sh)
				}
			default:
				err = s.skip(wt)
			}
			return err
		})
	})
}

// parseShape reads a TensorShapeProto: its dimensions, fixed or symbolic
// (a size beyond int32 reads as unknown).
func parseShape(r *reader) ([]graph.Dim, error) {
	shape := []graph.Dim{}
	err := r.eachSub(1, func(s *reader) error {
		d := graph.Dim{Value: -1}
		err := s.each(func(f, wt int) (err error) {
			switch f {
			case 1:
				var v int64
				v, err = s.int(wt)
				if v >= 0 && v <= math.MaxInt32 {
					d.Value = int(v)
				}
			case 2:
				d.Param, err = s.str(wt)
			default:
				err = s.skip(wt)
			}
			return err
		})
		if err != nil {
			return err
		}
		shape = append(shape, d)
		return nil
	})
	return shape, err
}

// dtypeOf maps an ONNX data type to loupe's; ok is false for types loupe
// cannot hold (strings, complex numbers).
func dtypeOf(t int64) (tensor.DType, bool) {
	switch t {
	case typeFloat, typeDouble, typeFloat16, typeBfloat16:
		return tensor.Float32, true
	case typeUint8, typeInt8, typeUint16, typeInt16, typeInt32, typeInt64, typeUint32, typeUint64:
		return tensor.Int64, true
	case typeBool:
		return tensor.Bool, true
	}
	return 0, false
}

// parseTensor reads a TensorProto: its name and its data in loupe's types
// (see the package comment).
func parseTensor(r *reader) (string, *tensor.Tensor, error) {
	var (
		name     string
		dims     []int64
		dataType int64
		raw      []byte
		hasRaw   bool
		floats   []float32
		ints     []int64 // int32_data (also bool, int8, uint8, float16 bits ...) or int64_data
		doubles  []float64
		external bool
	)
	err := r.each(func(f, wt int) (err error) {
		switch f {
		case 1:
			dims, err = r.int64s(wt, dims)
		case 2:
			dataType, err = r.int(wt)
		case 4:
			floats, err = r.float32s(wt, floats)
		case 5, 7, 11:
			ints, err = r.int64s(wt, ints)
		case 8:
			name, err = r.str(wt)
		case 9:
			raw, err = r.bytes()
			hasRaw = true
		case 10:
			doubles, err = r.float64s(wt, doubles)
		case 13:
			external = true
			err = r.skip(wt)
		case 14:
			var loc int64
			loc, err = r.int(wt)
			if loc == 1 {
				external = true
			}
		default:
			err = r.skip(wt)
		}
		return err
	})
	if err != nil {
		return name, nil, err
	}
	if external {
		return name, nil, fmt.Errorf("tensor data is stored in an external file, which loupe does not read; re-export the model with the weights inside it")
	}
	dt, ok := dtypeOf(dataType)
	if !ok {
		return name, nil, fmt.Errorf("unsupported data type %d", dataType)
	}
	shape := make([]int, len(dims))
	n := int64(1)
	for i, d := range dims {
		if d < 0 {
			return name, nil, fmt.Errorf("negative dimension %d in %v", d, dims)
		}
		if d > maxElements {
			// Checked alone too: after a 0 the product stays 0.
			return name, nil, fmt.Errorf("dimension %d in %v too large", d, dims)
		}
		if d > 0 && n > maxElements/d {
			return name, nil, fmt.Errorf("dimensions %v too large", dims)
		}
		n *= d
		shape[i] = int(d)
	}
	t := &tensor.Tensor{DType: dt, Shape: shape}
	count := int(n)
	if hasRaw {
		size := elemSize(dataType)
		if int64(len(raw)) != n*int64(size) {
			return name, nil, fmt.Errorf("raw data has %d bytes, want %d for shape %v of type %d", len(raw), n*int64(size), dims, dataType)
		}
		decodeRaw(t, dataType, raw, count)
		return name, t, nil
	}
	var got int
	switch dataType {
	case typeFloat:
		got = len(floats)
	case typeDouble:
		got = len(doubles)
	default:
		got = len(ints)
	}
	if got != count {
		return name, nil, fmt.Errorf("has %d values, want %d for shape %v", got, count, dims)
	}
	switch dataType {
	case typeFloat:
		t.F = floats
	case typeDouble:
		t.F = make([]float32, count)
		for i, v := range doubles {
			t.F[i] = float32(v)
		}
	case typeFloat16, typeBfloat16:
		t.F = make([]float32, count)
		for i, v := range ints {
			t.F[i] = halfToFloat(dataType, uint16(v))
		}
	case typeBool:
		t.B = make([]bool, count)
		for i, v := range ints {
			t.B[i] = v != 0
		}
	case typeInt32, typeInt16, typeInt8:
		// int32_data holds these as sign-extended varints, truncated to 64 bits.
		t.I = make([]int64, count)
		for i, v := range ints {
			t.I[i] = int64(int32(v))
		}
	default:
		t.I = ints
	}
	return name, t, nil
}

// elemSize is the size in bytes of one element of an ONNX data type in
// raw_data.
func elemSize(dataType int64) int {
	switch dataType {
	case typeUint8, typeInt8, typeBool:
		return 1
	case typeUint16, typeInt16, typeFloat16, typeBfloat16:
		return 2
	case typeFloat, typeInt32, typeUint32:
		return 4
	}
	return 8
}

// decodeRaw fills t, whose DType is set, with the n elements of raw, the
// little-endian raw_data of an ONNX data type.
func decodeRaw(t *tensor.Tensor, dataType int64, raw []byte, n int) {
	le := binary.LittleEndian
	switch t.DType {
	case tensor.Float32:
		t.F = make([]float32, n)
		switch dataType {
		case typeFloat:
			raw = raw[:4*n]
			for i := range t.F {
				t.F[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
			}
		case typeDouble:
			raw = raw[:8*n]
			for i := range t.F {
				t.F[i] = float32(math.Float64frombits(le.Uint64(raw[8*i:])))
			}
		default:
			raw = raw[:2*n]
			for i := range t.F {
				t.F[i] = halfToFloat(dataType, le.Uint16(raw[2*i:]))
			}
		}
	case tensor.Bool:
		t.B = make([]bool, n)
		for i := range t.B {
			t.B[i] = raw[i] != 0
		}
	default:
		t.I = make([]int64, n)
		for i := range t.I {
			switch dataType {
			case typeUint8:
				t.I[i] = int64(raw[i])
			case typeInt8:
				t.I[i] = int64(int8(raw[i]))
			case typeUint16:
				t.I[i] = int64(le.Uint16(raw[2*i:]))
			case typeInt16:
				t.I[i] = int64(int16(le.Uint16(raw[2*i:])))
			case typeInt32:
				t.I[i] = int64(int32(le.Uint32(raw[4*i:])))
			case typeUint32:
				t.I[i] = int64(le.Uint32(raw[4*i:]))
			default:
				t.I[i] = int64(le.Uint64(raw[8*i:]))
			}
		}
	}
}

// halfToFloat converts IEEE half (float16) or bfloat16 bits to float32.
func halfToFloat(dataType int64, h uint16) float32 {
	if dataType == typeBfloat16 {
		return math.Float32frombits(uint32(h) << 16)
	}
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal
		v := float32(frac) / 1024 / 16384
		if sign != 0 {
			v = -v
		}
		return v
	case exp == 31:
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | frac<<13)
}
