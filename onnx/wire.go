package onnx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Protobuf wire types.
const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
	wireFixed32 = 5
)

var errTruncated = errors.New("truncated message")

// reader walks the fields of one protobuf message.
type reader struct {
	b   []byte
	pos int
}

// next returns the next field's number and wire type; ok is false at the end.
func (r *reader) next() (field int, wt int, ok bool, err error) {
	if r.pos >= len(r.b) {
		return 0, 0, false, nil
	}
	key, err := r.varint()
	if err != nil {
		return 0, 0, false, err
	}
	field = int(key >> 3)
	wt = int(key & 7)
	if field <= 0 || key>>3 > math.MaxInt32 {
		return 0, 0, false, fmt.Errorf("invalid field number %d", key>>3)
	}
	return field, wt, true, nil
}

func (r *reader) varint() (uint64, error) {
	var v uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if r.pos >= len(r.b) {
			return 0, errTruncated
		}
		c := r.b[r.pos]
		r.pos++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, nil
		}
	}
	return 0, errors.New("varint overflows 64 bits")
}

func (r *reader) fixed32() (uint32, error) {
	if len(r.b)-r.pos < 4 {
		return 0, errTruncated
	}
	v := binary.LittleEndian.Uint32(r.b[r.pos:])
	r.pos += 4
	return v, nil
}

func (r *reader) fixed64() (uint64, error) {
	if len(r.b)-r.pos < 8 {
		return 0, errTruncated
	}
	v := binary.LittleEndian.Uint64(r.b[r.pos:])
	r.pos += 8
	return v, nil
}

// bytes returns a length-delimited field's payload (not copied).
func (r *reader) bytes() ([]byte, error) {
	n, err := r.varint()
	if err != nil {
		return nil, err
	}
	if n > uint64(len(r.b)-r.pos) {
		return nil, errTruncated
	}
	b := r.b[r.pos : r.pos+int(n)]
	r.pos += int(n)
	return b, nil
}

// skip skips a field of wire type wt.
func (r *reader) skip(wt int) error {
	var err error
	switch wt {
	case wireVarint:
		_, err = r.varint()
	case wireFixed64:
		_, err = r.fixed64()
	case wireBytes:
		_, err = r.bytes()
	case wireFixed32:
		_, err = r.fixed32()
	default:
		err = fmt.Errorf("unsupported wire type %d", wt)
	}
	return err
}

// int64s appends a repeated int64 field, packed or not.
func (r *reader) int64s(wt int, dst []int64) ([]int64, error) {
	if wt == wireVarint {
		v, err := r.varint()
		return append(dst, int64(v)), err
	}
	if wt != wireBytes {
		return dst, fmt.Errorf("wire type %d for a repeated integer", wt)
	}
	b, err := r.bytes()
	if err != nil {
		return dst, err
	}
	p := reader{b: b}
	for p.pos < len(p.b) {
		v, err := p.varint()
		if err != nil {
			return dst, err
		}
		dst = append(dst, int64(v))
	}
	return dst, nil
}

// float32s appends a repeated float field, packed or not.
func (r *reader) float32s(wt int, dst []float32) ([]float32, error) {
	if wt == wireFixed32 {
		v, err := r.fixed32()
		return append(dst, math.Float32frombits(v)), err
	}
	if wt != wireBytes {
		return dst, fmt.Errorf("wire type %d for a repeated float", wt)
	}
	b, err := r.bytes()
	if err != nil {
		return dst, err
	}
	if len(b)%4 != 0 {
		return dst, errors.New("packed floats not a multiple of 4 bytes")
	}
	for i := 0; i < len(b); i += 4 {
		dst = append(dst, math.Float32frombits(binary.LittleEndian.Uint32(b[i:])))
	}
	return dst, nil
}

// float64s appends a repeated double field, packed or not.
func (r *reader) float64s(wt int, dst []float64) ([]float64, error) {
	if wt == wireFixed64 {
		v, err := r.fixed64()
		return append(dst, math.Float64frombits(v)), err
	}
	if wt != wireBytes {
		return dst, fmt.Errorf("wire type %d for a repeated double", wt)
	}
	b, err := r.bytes()
	if err != nil {
		return dst, err
	}
	if len(b)%8 != 0 {
		return dst, errors.New("packed doubles not a multiple of 8 bytes")
	}
	for i := 0; i < len(b); i += 8 {
		dst = append(dst, math.Float64frombits(binary.LittleEndian.Uint64(b[i:])))
	}
	return dst, nil
}

// str reads a string field.
func (r *reader) str(wt int) (string, error) {
	if wt != wireBytes {
		return "", fmt.Errorf("wire type %d for a string", wt)
	}
	b, err := r.bytes()
	return string(b), err
}

// sub reads an embedded message.
func (r *reader) sub(wt int) (*reader, error) {
	if wt != wireBytes {
		return nil, fmt.Errorf("wire type %d for a message", wt)
	}
	b, err := r.bytes()
	if err != nil {
		return nil, err
	}
	return &reader{b: b}, nil
}

// int reads a single varint field.
func (r *reader) int(wt int) (int64, error) {
	if wt != wireVarint {
		return 0, fmt.Errorf("wire type %d for an integer", wt)
	}
	v, err := r.varint()
	return int64(v), err
}
