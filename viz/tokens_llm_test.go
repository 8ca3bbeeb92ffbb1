package viz

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/tensor"
)

func TestTokenAttrFigure(t *testing.T) {
	a := tensor.New(2, 3)
	copy(a.F, []float32{0.5, -1, 0, 0.25, 1, -0.1})
	in := []string{"the", "dog", "park"}
	out := []string{"it", "ran"}
	img, err := TokenAttrPNG(a, in, out)
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	if b.Dx() < 200 || b.Dy() < 80 {
		t.Fatalf("figure of %v is too small", b)
	}
	// The largest value is the darkest green, the smallest the darkest red:
	// find both colors among the cells.
	green, red := rdYlGn.At(1), rdYlGn.At(0)
	var sawGreen, sawRed bool
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			switch img.RGBAAt(x, y) {
			case green:
				sawGreen = true
			case red:
				sawRed = true
			}
		}
	}
	if !sawGreen || !sawRed {
		t.Errorf("heat map lacks the extreme colors (green %v, red %v)", sawGreen, sawRed)
	}
	svg, err := TokenAttrSVG(a, in, out)
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal([]byte(svg), new(struct{})); err != nil {
		t.Fatalf("SVG does not parse: %v", err)
	}
	for _, want := range []string{">the<", ">ran<", ">-1.0000<", ">0.2500<", "#006837", "#a50026"} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	dir := t.TempDir()
	for _, name := range []string{"tok.png", "tok.svg"} {
		if err := WriteTokenAttr(filepath.Join(dir, name), a, in, out); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, "tok.png"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(raw)); err != nil {
		t.Errorf("written PNG does not decode: %v", err)
	}
	if err := WriteTokenAttr(filepath.Join(dir, "tok.jpg"), a, in, out); err == nil {
		t.Error("a .jpg path gave no error")
	}
	if _, err := TokenAttrPNG(a, in, out[:1]); err == nil {
		t.Error("a token count that does not match the shape gave no error")
	}
}

func TestSeqAttrFigure(t *testing.T) {
	s := tensor.New(3)
	copy(s.F, []float32{0.3, -0.2, 0.1})
	in := []string{"a", "\n", strings.Repeat("x", 40)}
	svg, err := SeqAttrSVG(s, in)
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal([]byte(svg), new(struct{})); err != nil {
		t.Fatalf("SVG does not parse: %v", err)
	}
	// One green bar, one red, the long label cut and the newline shown.
	if strings.Count(svg, `fill="#008000"`) != 2 || strings.Count(svg, `fill="#ff0000"`) != 1 {
		t.Errorf("want 2 green and 1 red bars:\n%s", svg)
	}
	if !strings.Contains(svg, "xxx...") || !strings.Contains(svg, `\n`) {
		t.Errorf("labels not shortened or escaped:\n%s", svg)
	}
	img, err := SeqAttrPNG(s, in)
	if err != nil || img.Bounds().Dx() < 100 {
		t.Fatalf("PNG: %v %v", img, err)
	}
	if err := WriteSeqAttr(filepath.Join(t.TempDir(), "seq.svg"), s, in); err != nil {
		t.Fatal(err)
	}
	if _, err := SeqAttrPNG(tensor.New(2, 2), in); err == nil {
		t.Error("a matrix gave no error")
	}
}

// The heat map of a language model's per-token attributions: one row per
// output token, one column per input token.
func ExampleTokenAttrSVG() {
	a := tensor.New(2, 2)
	copy(a.F, []float32{0.8, -0.2, 0.1, 0.4})
	svg, err := TokenAttrSVG(a, []string{"the", "dog"}, []string{"it", "ran"})
	if err != nil {
		panic(err)
	}
	fmt.Println(strings.Count(svg, ">0.8000<"), strings.Count(svg, ">-0.2000<"))
	// Output: 1 1
}
