package npy

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loupe-ml/loupe/tensor"
)

// header returns a version 1 .npy header declaring descr and shape (as
// written between the parentheses).
func header(descr, shape string) []byte {
	h := "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + shape + "), }\n"
	var b bytes.Buffer
	b.WriteString("\x93NUMPY\x01\x00")
	binary.Write(&b, binary.LittleEndian, uint16(len(h)))
	b.WriteString(h)
	return b.Bytes()
}

// TestOverflowingShape: (2^62, 4) wrapped to 0 elements, then tensor.New panicked.
func TestOverflowingShape(t *testing.T) {
	for _, shape := range []string{"4611686018427387904, 4", "4294967296, 4294967296", "2000000000,"} {
		_, err := Read(bytes.NewReader(header("<f4", shape)))
		if err == nil || !strings.Contains(err.Error(), "elements") {
			t.Errorf("shape (%s): err %v, want one about the element count", shape, err)
		}
	}
}

// TestHugeShapeShortData: a header declaring 2^30 float64 and no data must
// fail on the missing bytes without allocating the whole array first.
func TestHugeShapeShortData(t *testing.T) {
	_, err := Read(bytes.NewReader(header("<f8", "1073741824,")))
	if err == nil || !strings.Contains(err.Error(), "bytes of data") {
		t.Errorf("err %v, want a short-data error", err)
	}
}

// TestReadStopsAtDeclaredData: Read takes only the bytes the header
// declares from an endless stream (io.ReadAll never returned).
func TestReadStopsAtDeclaredData(t *testing.T) {
	r := io.MultiReader(bytes.NewReader(header("|u1", "3,")), zeros{})
	x, err := Read(r)
	if err != nil || !tensor.SameShape(x.Shape, []int{3}) {
		t.Fatalf("got %v, %v", x, err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestHugeHeaderRefused: a version 2 header may declare 4 GiB.
func TestHugeHeaderRefused(t *testing.T) {
	b := []byte("\x93NUMPY\x02\x00\xff\xff\xff\xff")
	if _, err := Read(io.MultiReader(bytes.NewReader(b), zeros{})); err == nil || !strings.Contains(err.Error(), "header of") {
		t.Errorf("err %v, want a header size error", err)
	}
}

// TestReadFileRefusesNonRegular: a FIFO hung io.ReadAll; /dev/zero grew
// without bound.
func TestReadFileRefusesNonRegular(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadFile(dir); err == nil {
		t.Error("directory: no error")
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err == nil {
		// No writer: opening the FIFO for reading would block, so ReadFile
		// must refuse it without opening it.
		errc := make(chan error, 1)
		go func() {
			_, err := ReadFile(fifo)
			errc <- err
		}()
		select {
		case err := <-errc:
			if err == nil || !strings.Contains(err.Error(), "regular") {
				t.Errorf("FIFO: err %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("FIFO: ReadFile blocked")
		}
	}
	if _, err := os.Stat("/dev/zero"); err == nil {
		if _, err := ReadFile("/dev/zero"); err == nil || !strings.Contains(err.Error(), "regular") {
			t.Errorf("/dev/zero: err %v", err)
		}
	}
}

func FuzzRead(f *testing.F) {
	for _, x := range []*tensor.Tensor{tensor.New(2, 3), tensor.NewInt(4), tensor.NewBool(1, 1), tensor.Scalar(1)} {
		var b bytes.Buffer
		Write(&b, x)
		f.Add(b.Bytes())
	}
	f.Add(header("<f8", "4611686018427387904, 4"))
	f.Add(header("<i4", "2, 2"))
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := Read(bytes.NewReader(b))
		if err != nil {
			return
		}
		if err := x.Check(); err != nil {
			t.Fatalf("Read returned an inconsistent tensor: %v", err)
		}
		if x.Len() > len(b) {
			t.Fatalf("%d elements from %d bytes", x.Len(), len(b))
		}
	})
}

// Nil readers, writers and tensors are errors, not panics.
func TestNilArguments(t *testing.T) {
	if _, err := Read(nil); err == nil || !strings.Contains(err.Error(), "nil reader") {
		t.Errorf("Read(nil): %v", err)
	}
	if err := Write(nil, tensor.New(2)); err == nil || !strings.Contains(err.Error(), "nil writer") {
		t.Errorf("Write(nil, t): %v", err)
	}
	var b bytes.Buffer
	if err := Write(&b, nil); err == nil || !strings.Contains(err.Error(), "nil tensor") {
		t.Errorf("Write(w, nil): %v", err)
	}
	bad := &tensor.Tensor{DType: tensor.Float32, Shape: []int{3, 2}, F: make([]float32, 5)}
	if err := Write(&b, bad); err == nil || !strings.Contains(err.Error(), "holds 5 values") {
		t.Errorf("Write of an inconsistent tensor: %v", err)
	}
	if err := WriteFile(filepath.Join(t.TempDir(), "x.npy"), nil); err == nil {
		t.Error("WriteFile(nil): no error")
	}
}
