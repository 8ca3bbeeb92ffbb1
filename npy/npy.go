// Package npy reads and writes tensors in NumPy's .npy format, so that
// Python users can load what loupe writes and give it their arrays. Write
// writes version 1 files of float32, int64 or bool; Read takes versions 1
// to 3 of little-endian float32, float64, int32, int64, uint8 and bool
// arrays in C order.
package npy

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/loupe-ml/loupe/internal/fileio"
	"github.com/loupe-ml/loupe/tensor"
)

// Write writes t to w as .npy (float32 as '<f4', int64 as '<i8', bool as '|b1').
func Write(w io.Writer, t *tensor.Tensor) error {
	if w == nil {
		return fmt.Errorf("npy: nil writer")
	}
	if err := t.Check(); err != nil {
		return fmt.Errorf("npy: %w", err)
	}
	descr := map[tensor.DType]string{tensor.Float32: "<f4", tensor.Int64: "<i8", tensor.Bool: "|b1"}[t.DType]
	shape := make([]string, len(t.Shape))
	for i, d := range t.Shape {
		shape[i] = strconv.Itoa(d)
	}
	sh := strings.Join(shape, ", ")
	if len(shape) == 1 {
		sh += ","
	}
	header := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, sh)
	pad := 64 - (10+len(header)+1)%64
	header += strings.Repeat(" ", pad%64) + "\n"
	var buf bytes.Buffer
	buf.WriteString("\x93NUMPY\x01\x00")
	binary.Write(&buf, binary.LittleEndian, uint16(len(header)))
	buf.WriteString(header)
	switch t.DType {
	case tensor.Float32:
		binary.Write(&buf, binary.LittleEndian, t.F)
	case tensor.Int64:
		binary.Write(&buf, binary.LittleEndian, t.I)
	case tensor.Bool:
		for _, b := range t.B {
			if b {
				buf.WriteByte(1)
			} else {
				buf.WriteByte(0)
			}
		}
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// WriteFile writes t to a .npy file.
func WriteFile(path string, t *tensor.Tensor) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := Write(f, t); err != nil {
		f.Close()
		return fmt.Errorf("npy: %s: %w", path, err)
	}
	return f.Close()
}

var (
	descrRe = regexp.MustCompile(`'descr':\s*'([^']*)'`)
	orderRe = regexp.MustCompile(`'fortran_order':\s*(True|False)`)
	shapeRe = regexp.MustCompile(`'shape':\s*\(([^)]*)\)`)
)

// MaxHeader is the longest .npy header Read accepts, in bytes (NumPy
// writes a few hundred; version 2 and 3 files may declare up to 4 GiB).
const MaxHeader = 1 << 20

// Read reads a .npy array: floats become float32, integers int64 and
// bools stay bool. It reads the header, checks the declared shape against
// tensor.MaxLen, and then reads no more than the data the header declares
// (memory grows with the bytes that actually arrive, not with the shape).
func Read(r io.Reader) (*tensor.Tensor, error) {
	if r == nil {
		return nil, fmt.Errorf("npy: nil reader")
	}
	pre := make([]byte, 12)
	if _, err := io.ReadFull(r, pre[:10]); err != nil || string(pre[:6]) != "\x93NUMPY" {
		return nil, fmt.Errorf("npy: not a .npy file")
	}
	var hlen int
	switch pre[6] {
	case 1:
		hlen = int(binary.LittleEndian.Uint16(pre[8:]))
	case 2, 3:
		if _, err := io.ReadFull(r, pre[10:12]); err != nil {
			return nil, fmt.Errorf("npy: truncated header")
		}
		hlen = int(binary.LittleEndian.Uint32(pre[8:]))
	default:
		return nil, fmt.Errorf("npy: unsupported version %d", pre[6])
	}
	if hlen > MaxHeader {
		return nil, fmt.Errorf("npy: header of %d bytes (at most %d)", hlen, MaxHeader)
	}
	hb := make([]byte, hlen)
	if _, err := io.ReadFull(r, hb); err != nil {
		return nil, fmt.Errorf("npy: truncated header")
	}
	h := string(hb)
	dm, om, sm := descrRe.FindStringSubmatch(h), orderRe.FindStringSubmatch(h), shapeRe.FindStringSubmatch(h)
	if dm == nil || om == nil || sm == nil {
		return nil, fmt.Errorf("npy: cannot read header %q", h)
	}
	if om[1] == "True" {
		return nil, fmt.Errorf("npy: Fortran-ordered arrays are not supported; save with np.ascontiguousarray")
	}
	var shape []int
	for _, p := range strings.Split(sm[1], ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		d, err := strconv.Atoi(p)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("npy: bad shape %q", sm[1])
		}
		shape = append(shape, d)
	}
	if shape == nil {
		shape = []int{}
	}
	n, err := tensor.CheckedSize(shape)
	if err != nil {
		return nil, fmt.Errorf("npy: %w", err)
	}
	descr := dm[1]
	size := map[string]int{"<f4": 4, "<f8": 8, "<i8": 8, "<i4": 4, "|b1": 1, "|u1": 1, "<u1": 1}[descr]
	if size == 0 {
		return nil, fmt.Errorf("npy: unsupported dtype %q (want float32, float64, int32, int64, bool or uint8, little-endian)", descr)
	}
	var buf bytes.Buffer
	got, err := io.CopyN(&buf, r, int64(n)*int64(size))
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("npy: %w", err)
	}
	if got < int64(n)*int64(size) {
		return nil, fmt.Errorf("npy: %d bytes of data for shape %v of %s", got, shape, descr)
	}
	data := buf.Bytes()
	le := binary.LittleEndian
	switch descr {
	case "<f4", "<f8":
		t := tensor.New(shape...)
		for i := range t.F {
			if size == 4 {
				t.F[i] = math.Float32frombits(le.Uint32(data[4*i:]))
			} else {
				t.F[i] = float32(math.Float64frombits(le.Uint64(data[8*i:])))
			}
		}
		return t, nil
	case "|b1":
		t := tensor.NewBool(shape...)
		for i := range t.B {
			t.B[i] = data[i] != 0
		}
		return t, nil
	}
	t := tensor.NewInt(shape...)
	for i := range t.I {
		switch descr {
		case "<i8":
			t.I[i] = int64(le.Uint64(data[8*i:]))
		case "<i4":
			t.I[i] = int64(int32(le.Uint32(data[4*i:])))
		default:
			t.I[i] = int64(data[i])
		}
	}
	return t, nil
}

// ReadFile reads a .npy file. It refuses what is not a regular file
// (a FIFO, a device such as /dev/zero, a directory).
func ReadFile(path string) (*tensor.Tensor, error) {
	f, _, err := fileio.OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t, err := Read(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}
