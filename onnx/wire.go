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

// varint reads a base-128 varint.
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

// fixed32 reads a 4-byte little-endian value.
func (r *reader) fixed32() (uint32, error) {
	b, err := r.take(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

// take returns the next n bytes (not copied).
func (r *reader) take(n int) ([]byte, error) {
	if len(r.b)-r.pos < n {
		return nil, errTruncated
	}
	b := r.b[r.pos : r.pos+n]
	r.pos += n
	return b, nil
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
	return r.take(int(n))
}

// skip skips a field of wire type wt.
func (r *reader) skip(wt int) error {
	var err error
	switch wt {
	case wireVarint:
		_, err = r.varint()
	case wireFixed64:
		_, err = r.take(8)
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
	return fixedValues(r, wt, wireFixed32, "float", dst, func(b []byte) float32 {
		return math.Float32frombits(binary.LittleEndian.Uint32(b))
	})
}

// float64s appends a repeated double field, packed or not.
func (r *reader) float64s(wt int, dst []float64) ([]float64, error) {
	return fixedValues(r, wt, wireFixed64, "double", dst, func(b []byte) float64 {
		return math.Float64frombits(binary.LittleEndian.Uint64(b))
	})
}

// fixedValues appends a repeated field of fixed-width values (wire type
// one: 4 bytes for wireFixed32, 8 for wireFixed64), one value or a packed
// run of them, each decoded from its bytes by dec; what names the type in
// errors.
func fixedValues[T any](r *reader, wt, one int, what string, dst []T, dec func([]byte) T) ([]T, error) {
	size := 4
	if one == wireFixed64 {
		size = 8
	}
	var b []byte
	var err error
	switch wt {
	case one:
		b, err = r.take(size)
	case wireBytes:
		b, err = r.bytes()
		if err == nil && len(b)%size != 0 {
			err = fmt.Errorf("packed %ss not a multiple of %d bytes", what, size)
		}
	default:
		err = fmt.Errorf("wire type %d for a repeated %s", wt, what)
	}
	if err != nil {
		return dst, err
	}
	for i := 0; i < len(b); i += size {
		dst = append(dst, dec(b[i:]))
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

// each calls f with the number and wire type of each field of the message
// in turn, up to its end or the first error; f reads or skips the field.
func (r *reader) each(f func(field, wt int) error) error {
	for {
		field, wt, ok, err := r.next()
		if err != nil || !ok {
			return err
		}
		if err := f(field, wt); err != nil {
			return err
		}
	}
}

// eachSub calls f with each embedded message of the given field number,
// skipping the other fields.
func (r *reader) eachSub(field int, f func(*reader) error) error {
	return r.each(func(fd, wt int) error {
		if fd != field {
			return r.skip(wt)
		}
		s, err := r.sub(wt)
		if err != nil {
			return err
		}
		return f(s)
	})
}
