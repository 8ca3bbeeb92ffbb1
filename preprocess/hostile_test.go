package preprocess

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// bombPNG returns a 1x1 PNG whose header is patched to declare w×h pixels
// (a few dozen bytes that image.Decode would try to allocate w*h pixels
// for).
func bombPNG(t testing.TB, w, h uint32) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, 1, 1))); err != nil {
		t.Fatal(err)
	}
	p := b.Bytes()
	// signature (8), IHDR length (4), "IHDR" (4), width, height at 16, 20.
	binary.BigEndian.PutUint32(p[16:], w)
	binary.BigEndian.PutUint32(p[20:], h)
	binary.BigEndian.PutUint32(p[29:], crc32.ChecksumIEEE(p[12:29]))
	return p
}

// TestDecompressionBomb: a tiny PNG declaring 100000x100000 pixels was
// decoded before any size check (fatal out of memory).
func TestDecompressionBomb(t *testing.T) {
	for _, side := range []uint32{100000, 20000} {
		p := bombPNG(t, side, side)
		path := filepath.Join(t.TempDir(), "bomb.png")
		if err := os.WriteFile(path, p, 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err := Load(path, Options{})
		if err == nil || !strings.Contains(err.Error(), "pixels") {
			t.Errorf("%dx%d PNG of %d bytes: err %v, want a pixel count error", side, side, len(p), err)
		}
	}
}

// huge is a uniform picture of any size that costs no memory.
type huge struct{ w, h int }

func (huge) ColorModel() color.Model   { return color.GrayModel }
func (u huge) Bounds() image.Rectangle { return image.Rect(0, 0, u.w, u.h) }
func (huge) At(x, y int) color.Color   { return color.Gray{128} }

// TestHugeImage: a real 20000x20000 picture panicked in tensor.New.
func TestHugeImage(t *testing.T) {
	if _, _, err := Image(huge{20000, 20000}, Options{}); err == nil || !strings.Contains(err.Error(), "pixels") {
		t.Errorf("20000x20000: err %v", err)
	}
	if _, _, err := Image(huge{4, 4}, Options{Resize: 1 << 40}); err == nil {
		t.Error("Resize 2^40: no error")
	}
	if _, _, err := Image(huge{4, 4}, Options{Resize: -3}); err == nil {
		t.Error("Resize -3: no error")
	}
	if _, _, err := Image(huge{4, 4}, Options{Gray: true, Mean: []float64{0}, Std: []float64{0}}); err == nil {
		t.Error("std 0: no error")
	}
}

func FuzzDecode(f *testing.F) {
	var b bytes.Buffer
	png.Encode(&b, image.NewNRGBA(image.Rect(0, 0, 3, 2)))
	f.Add(b.Bytes())
	f.Add(bombPNG(f, 100000, 100000))
	f.Add(bombPNG(f, 9, 7))
	f.Fuzz(func(t *testing.T, p []byte) {
		src, err := Decode(bytes.NewReader(p))
		if err != nil {
			return
		}
		b := src.Bounds()
		if b.Dx()*b.Dy() > MaxPixels {
			t.Fatalf("decoded %v", b)
		}
		Image(src, Options{Resize: 5, CenterCrop: 3}) // may refuse a small picture; must not panic
	})
}
