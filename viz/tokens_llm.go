package viz

import (
	"fmt"
	"html"
	"image"
	"image/color"
	"image/draw"
	"math"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"golang.org/x/image/font"
	"golang.org/x/image/math/fixed"

	"github.com/loupe-ml/loupe/tensor"
)

// The figures of a language model's attribution (Captum's
// LLMAttributionResult.plot_token_attr and plot_seq_attr): a heat map of
// output tokens (rows) by input features (columns), and a bar chart of the
// sequence attribution per input feature. Both render to PNG and SVG from
// the same list of shapes.

// rdYlGn is matplotlib's RdYlGn (ColorBrewer, eleven stops), the map of
// Captum's token heat map.
var rdYlGn = Colormap{Name: "RdYlGn", stops: hexStops("a50026", "d73027", "f46d43", "fdae61", "fee08b", "ffffbf",
	"d9ef8b", "a6d96a", "66bd63", "1a9850", "006837")}

// tokMaxLabel is how many characters of a token label are shown (Captum
// shortens labels to 50 with "...").
const tokMaxLabel = 24

// maxTokenCells bounds the heat map's cells.
const maxTokenCells = 1 << 16

// tokShape is one primitive of a token figure.
type tokShape struct {
	kind       byte // 'r' filled rectangle, 't' text, 'l' line
	x, y, w, h int  // rectangle, or line from (x, y) to (x+w, y+h); text at (x, y) baseline
	c          color.RGBA
	text       string
	anchor     int // text: -1 left, 0 middle, 1 right
	size       float64
}

type tokCanvas struct {
	w, h   int
	shapes []tokShape
}

func (cv *tokCanvas) rect(x, y, w, h int, c color.RGBA) {
	cv.shapes = append(cv.shapes, tokShape{kind: 'r', x: x, y: y, w: w, h: h, c: c})
}

func (cv *tokCanvas) line(x0, y0, x1, y1 int, c color.RGBA) {
	cv.shapes = append(cv.shapes, tokShape{kind: 'l', x: x0, y: y0, w: x1 - x0, h: y1 - y0, c: c})
}

func (cv *tokCanvas) text(s string, x, y, anchor int, size float64, c color.RGBA) {
	cv.shapes = append(cv.shapes, tokShape{kind: 't', x: x, y: y, text: s, anchor: anchor, size: size, c: c})
}

var (
	tokBlack = color.RGBA{0, 0, 0, 255}
	tokWhite = color.RGBA{255, 255, 255, 255}
	tokGray  = color.RGBA{120, 120, 120, 255}
)

// png renders the shapes.
func (cv *tokCanvas) png() *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, cv.w, cv.h))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	faces := map[float64]font.Face{}
	defer func() {
		for _, f := range faces {
			f.Close()
		}
	}()
	for _, s := range cv.shapes {
		switch s.kind {
		case 'r':
			draw.Draw(img, image.Rect(s.x, s.y, s.x+s.w, s.y+s.h), image.NewUniform(s.c), image.Point{}, draw.Src)
		case 'l':
			n := max(tokAbs(s.w), tokAbs(s.h), 1)
			for k := 0; k <= n; k++ {
				img.SetRGBA(s.x+s.w*k/n, s.y+s.h*k/n, s.c)
			}
		case 't':
			face, ok := faces[s.size]
			if !ok {
				face = newFace(s.size)
				faces[s.size] = face
			}
			d := font.Drawer{Dst: img, Src: image.NewUniform(s.c), Face: face}
			x := s.x
			switch w := d.MeasureString(s.text).Round(); s.anchor {
			case 0:
				x -= w / 2
			case 1:
				x -= w
			}
			d.Dot = fixed.P(x, s.y)
			d.DrawString(s.text)
		}
	}
	return img
}

func tokAbs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// svg renders the shapes as an SVG document.
func (cv *tokCanvas) svg() string {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif">`, cv.w, cv.h, cv.w, cv.h)
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>`)
	hex := func(c color.RGBA) string { return fmt.Sprintf("#%02x%02x%02x", c.R, c.G, c.B) }
	for _, s := range cv.shapes {
		switch s.kind {
		case 'r':
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`, s.x, s.y, s.w, s.h, hex(s.c))
		case 'l':
			fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s"/>`, s.x, s.y, s.x+s.w, s.y+s.h, hex(s.c))
		case 't':
			anchor := map[int]string{-1: "start", 0: "middle", 1: "end"}[s.anchor]
			fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="%g" text-anchor="%s" fill="%s">%s</text>`, s.x, s.y, s.size, anchor, hex(s.c), html.EscapeString(s.text))
		}
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// write saves the canvas as PNG or SVG by the file's extension.
func (cv *tokCanvas) write(path string) error {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".png":
		return WritePNG(path, cv.png())
	case ".svg":
		return WriteSVG(path, cv.svg())
	}
	return fmt.Errorf("viz: %s: write a .png or .svg file", path)
}

// tokLabel cuts a label to tokMaxLabel characters with "...", and shows
// invisible tokens (spaces, newlines) visibly.
func tokLabel(s string) string {
	s = strings.NewReplacer("\n", `\n`, "\t", `\t`).Replace(s)
	if strings.TrimSpace(s) == "" {
		s = fmt.Sprintf("%q", s)
	}
	if utf8.RuneCountInString(s) <= tokMaxLabel {
		return s
	}
	r := []rune(s)
	return string(r[:tokMaxLabel-3]) + "..."
}

// tokTextWidth measures s at size points.
func tokTextWidth(s string, size float64) int {
	face := newFace(size)
	defer face.Close()
	return font.MeasureString(face, s).Ceil()
}

// tokenCanvas lays out the token heat map.
func tokenCanvas(attr *tensor.Tensor, inputTokens, outputTokens []string) (*tokCanvas, error) {
	if attr == nil || attr.DType != tensor.Float32 || attr.Rank() != 2 {
		return nil, fmt.Errorf("viz: token attributions must be a float tensor [output tokens, input tokens]")
	}
	rows, cols := attr.Shape[0], attr.Shape[1]
	if rows != len(outputTokens) || cols != len(inputTokens) {
		return nil, fmt.Errorf("viz: token attributions of shape %v for %d output and %d input tokens", attr.Shape, len(outputTokens), len(inputTokens))
	}
	if rows == 0 || cols == 0 || rows*cols > maxTokenCells {
		return nil, fmt.Errorf("viz: token attributions of shape %v: need 1 to %d cells", attr.Shape, maxTokenCells)
	}
	const size, pad, cellH = 12.0, 10, 26
	m := 0.0
	for _, v := range attr.F {
		if a := math.Abs(float64(v)); a > m && !math.IsInf(a, 0) {
			m = a
		}
	}
	if m == 0 {
		m = 1
	}
	cellW := tokTextWidth("-0.0000", size) + 12
	for _, t := range inputTokens {
		cellW = max(cellW, tokTextWidth(tokLabel(t), size)+10)
	}
	left := 0
	for _, t := range outputTokens {
		left = max(left, tokTextWidth(tokLabel(t), size))
	}
	left += 2 * pad
	top := pad + 2*cellH
	gridW, gridH := cols*cellW, rows*cellH
	barX := left + gridW + 2*pad
	cv := &tokCanvas{w: barX + 14 + tokTextWidth("-0.000e-00", size) + tokTextWidth("Token Attribution", size) + 3*pad, h: top + gridH + 2*pad}
	cv.text("Token Attribution", left+gridW/2, pad+14, 0, size+2, tokBlack)
	for i, t := range inputTokens {
		cv.text(tokLabel(t), left+i*cellW+cellW/2, top-8, 0, size, tokBlack)
	}
	for j, t := range outputTokens {
		cv.text(tokLabel(t), left-pad, top+j*cellH+cellH/2+4, 1, size, tokBlack)
		for i := range cols {
			v := float64(attr.F[j*cols+i])
			t := (v + m) / (2 * m)
			cv.rect(left+i*cellW, top+j*cellH, cellW, cellH, rdYlGn.At(t))
			ink := tokWhite
			if t > 0.2 && t < 0.8 {
				ink = tokBlack
			}
			cv.text(fmt.Sprintf("%.4f", v), left+i*cellW+cellW/2, top+j*cellH+cellH/2+4, 0, size-1, ink)
		}
	}
	// The color bar, -m at the bottom to m at the top.
	for y := range gridH {
		cv.rect(barX, top+y, 14, 1, rdYlGn.At(1-float64(y)/float64(max(gridH-1, 1))))
	}
	for k, v := range []float64{m, 0, -m} {
		y := top + k*(gridH-1)/2
		cv.line(barX+14, y, barX+18, y, tokBlack)
		cv.text(fmt.Sprintf("%.3g", v), barX+20, y+4, -1, size-1, tokBlack)
	}
	return cv, nil
}

// TokenAttrPNG draws token attributions [output tokens, input tokens] as a
// heat map (Captum's plot_token_attr): one row per output token, one column
// per input feature, colored by RdYlGn centred on 0 and scaled by the
// largest magnitude, each cell labelled with its value, with a color bar.
func TokenAttrPNG(attr *tensor.Tensor, inputTokens, outputTokens []string) (*image.RGBA, error) {
	cv, err := tokenCanvas(attr, inputTokens, outputTokens)
	if err != nil {
		return nil, err
	}
	return cv.png(), nil
}

// TokenAttrSVG draws the heat map of TokenAttrPNG as an SVG document.
func TokenAttrSVG(attr *tensor.Tensor, inputTokens, outputTokens []string) (string, error) {
	cv, err := tokenCanvas(attr, inputTokens, outputTokens)
	if err != nil {
		return "", err
	}
	return cv.svg(), nil
}

// WriteTokenAttr writes the heat map of TokenAttrPNG to a .png or .svg
// file.
func WriteTokenAttr(path string, attr *tensor.Tensor, inputTokens, outputTokens []string) error {
	cv, err := tokenCanvas(attr, inputTokens, outputTokens)
	if err != nil {
		return err
	}
	return cv.write(path)
}

// seqCanvas lays out the sequence bar chart.
func seqCanvas(seq *tensor.Tensor, inputTokens []string) (*tokCanvas, error) {
	if seq == nil || seq.DType != tensor.Float32 || seq.Rank() != 1 {
		return nil, fmt.Errorf("viz: sequence attributions must be a float tensor [input tokens]")
	}
	n := seq.Shape[0]
	if n != len(inputTokens) || n == 0 || n > maxTokenCells {
		return nil, fmt.Errorf("viz: %d sequence attributions for %d input tokens", n, len(inputTokens))
	}
	const size, pad, plotH = 12.0, 10, 220
	lo, hi := 0.0, 0.0
	for _, v := range seq.F {
		if x := float64(v); !math.IsNaN(x) && !math.IsInf(x, 0) {
			lo, hi = math.Min(lo, x), math.Max(hi, x)
		}
	}
	if hi == lo {
		hi = lo + 1
	}
	colW := tokTextWidth("-0.0000", size) + 12
	for _, t := range inputTokens {
		colW = max(colW, tokTextWidth(tokLabel(t), size)+10)
	}
	left := tokTextWidth("-0.000e-00", size) + 2*pad
	top := pad + 2*26
	cv := &tokCanvas{w: left + n*colW + 2*pad, h: top + plotH + 2*pad}
	cv.text("Sequence Attribution", left+n*colW/2, pad+14, 0, size+2, tokBlack)
	py := func(v float64) int { return top + int(math.Round((hi-v)/(hi-lo)*float64(plotH))) }
	y0 := py(0)
	cv.line(left, top, left, top+plotH, tokBlack)
	for _, v := range []float64{hi, 0, lo} {
		cv.line(left-4, py(v), left, py(v), tokBlack)
		cv.text(fmt.Sprintf("%.3g", v), left-6, py(v)+4, 1, size-1, tokBlack)
	}
	for i, t := range inputTokens {
		cx := left + i*colW + colW/2
		cv.text(tokLabel(t), cx, top-8, 0, size, tokBlack)
		v := float64(seq.F[i])
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		bw := colW * 6 / 10
		y := py(v)
		if v >= 0 {
			cv.rect(cx-bw/2, y, bw, y0-y, color.RGBA{0, 128, 0, 255})
		} else {
			cv.rect(cx-bw/2, y0, bw, y-y0, color.RGBA{255, 0, 0, 255})
		}
	}
	cv.line(left, y0, left+n*colW, y0, tokGray)
	return cv, nil
}

// SeqAttrPNG draws sequence attributions [input tokens] as bars (Captum's
// plot_seq_attr): green up for positive, red down for negative, the input
// tokens above.
func SeqAttrPNG(seq *tensor.Tensor, inputTokens []string) (*image.RGBA, error) {
	cv, err := seqCanvas(seq, inputTokens)
	if err != nil {
		return nil, err
	}
	return cv.png(), nil
}

// SeqAttrSVG draws the bars of SeqAttrPNG as an SVG document.
func SeqAttrSVG(seq *tensor.Tensor, inputTokens []string) (string, error) {
	cv, err := seqCanvas(seq, inputTokens)
	if err != nil {
		return "", err
	}
	return cv.svg(), nil
}

// WriteSeqAttr writes the bars of SeqAttrPNG to a .png or .svg file.
func WriteSeqAttr(path string, seq *tensor.Tensor, inputTokens []string) error {
	cv, err := seqCanvas(seq, inputTokens)
	if err != nil {
		return err
	}
	return cv.write(path)
}
