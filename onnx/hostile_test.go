package onnx

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ReadFile refuses what is not a regular file before reading it: a FIFO
// hung (even at open, with no writer), /dev/zero grew without bound.
func TestReadFileRefusesNonRegular(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadFile(dir); err == nil || !strings.Contains(err.Error(), "regular") {
		t.Errorf("directory: %v", err)
	}
	if _, err := ReadFile(filepath.Join(dir, "missing.onnx")); err == nil || !strings.Contains(err.Error(), "missing.onnx") {
		t.Errorf("missing file: %v", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err == nil {
		errc := make(chan error, 1)
		go func() {
			_, err := ReadFile(fifo)
			errc <- err
		}()
		select {
		case err := <-errc:
			if err == nil || !strings.Contains(err.Error(), "regular") {
				t.Errorf("FIFO: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("FIFO: ReadFile blocked")
		}
	}
	if _, err := os.Stat("/dev/zero"); err == nil {
		if _, err := ReadFile("/dev/zero"); err == nil || !strings.Contains(err.Error(), "regular") {
			t.Errorf("/dev/zero: %v", err)
		}
	}
	empty := filepath.Join(dir, "empty.onnx")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(empty); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty file: %v", err)
	}
	if _, err := Parse(nil); err == nil {
		t.Error("Parse(nil): no error")
	}
}

// varint appends v as a protobuf varint.
func varint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// A dimension beyond the element bound is refused even after a 0, which
// keeps the element count at 0 ([0, 2^62] was accepted as an empty tensor
// whose shape later overflowed computations).
func TestTensorDimensionBound(t *testing.T) {
	for _, dims := range [][]uint64{{0, 1 << 62}, {1 << 40}, {1 << 20, 1 << 20}} {
		var b []byte
		for _, d := range dims {
			b = varint(append(b, 0x08), d) // dims
		}
		b = varint(append(b, 0x10), typeFloat) // data_type
		b = append(b, 0x4a, 0x00)              // raw_data, empty
		_, _, err := parseTensor(&reader{b: b})
		if err == nil || !strings.Contains(err.Error(), "too large") {
			t.Errorf("dims %v: %v, want a dimension error", dims, err)
		}
	}
	// An empty tensor with modest dimensions is fine.
	b := varint(append(varint(append([]byte{}, 0x08), 0), 0x08), 5)
	b = varint(append(b, 0x10), typeFloat)
	if _, x, err := parseTensor(&reader{b: append(b, 0x4a, 0x00)}); err != nil || x.Len() != 0 {
		t.Errorf("dims [0 5]: %v, %v", x, err)
	}
}
