package viz

import (
	"fmt"
	"html"
	"image"
	"image/color"
	"image/draw"
	"math"
	"strings"

	"golang.org/x/image/font"
)

// TextRecord is one example for TextHTML, as Captum's VisualizationDataRecord.
type TextRecord struct {
	Tokens           []string
	Attributions     []float64 // one per token (see attr.SumTokens)
	TrueLabel        string
	PredictedLabel   string
	PredictedProb    float64
	AttributionLabel string
	AttributionScore float64
}

// tokenColor is Captum's color for a word's attribution clipped to
// [-1, 1]: a green whose lightness falls from 100% to 50% for positive
// values, a red falling to 60% for negative ones (HSL, saturation 75%).
func tokenColor(a float64) color.RGBA {
	a = math.Max(-1, math.Min(1, a))
	hue, light := 120.0, 100-float64(int(50*a))
	if a < 0 {
		hue, light = 0, 100-float64(int(-40*a))
	}
	return hsl(hue, 0.75, light/100)
}

// hsl converts a color from hue (degrees), saturation and lightness
// (0 to 1) to RGB.
func hsl(h, s, l float64) color.RGBA {
	c := (1 - math.Abs(2*l-1)) * s
	hp := math.Mod(h/60, 6)
	x := c * (1 - math.Abs(math.Mod(hp, 2)-1))
	var r, g, b float64
	switch {
	case hp < 1:
		r, g = c, x
	case hp < 2:
		r, g = x, c
	case hp < 3:
		g, b = c, x
	case hp < 4:
		g, b = x, c
	case hp < 5:
		r, b = x, c
	default:
		r, b = c, x
	}
	m := l - c/2
	to := func(v float64) uint8 { return uint8(math.Round(255 * (v + m))) }
	return color.RGBA{to(r), to(g), to(b), 255}
}

// tokenShares returns each token's attribution over the record's largest
// absolute value (0 for tokens without one).
func (r TextRecord) tokenShares() []float64 {
	m := 0.0
	for _, a := range r.Attributions {
		m = math.Max(m, math.Abs(a))
	}
	out := make([]float64, len(r.Tokens))
	for i := range out {
		if i < len(r.Attributions) && m > 0 {
			out[i] = r.Attributions[i] / m
		}
	}
	return out
}

var textHeader = []string{"True Label", "Predicted Label", "Attribution Label", "Attribution Score", "Word Importance"}

// cells returns the record's first four columns as text.
func (r TextRecord) cells() []string {
	return []string{r.TrueLabel, fmt.Sprintf("%s (%.2f)", r.PredictedLabel, r.PredictedProb), r.AttributionLabel, fmt.Sprintf("%.2f", r.AttributionScore)}
}

// TextHTML renders records as an HTML table under a legend, each token's
// background green for positive and red for negative attribution, its
// strength the attribution over the record's largest absolute value, in
// Captum's colors (visualize_text).
func TextHTML(records []TextRecord) string {
	var b strings.Builder
	rgb := func(c color.RGBA) string { return fmt.Sprintf("rgb(%d,%d,%d)", c.R, c.G, c.B) }
	fmt.Fprintf(&b, `<p style="font-family:sans-serif;font-size:13px">Legend: <span style="background:%s">&nbsp;&nbsp;&nbsp;</span> Negative `+
		`<span style="background:%s;border:1px solid #ccc">&nbsp;&nbsp;&nbsp;</span> Neutral <span style="background:%s">&nbsp;&nbsp;&nbsp;</span> Positive</p>`,
		rgb(tokenColor(-1)), rgb(tokenColor(0)), rgb(tokenColor(1)))
	b.WriteString(`<table style="border-collapse:collapse;font-family:sans-serif;font-size:13px"><tr>`)
	for _, h := range textHeader {
		fmt.Fprintf(&b, "<th>%s</th>", h)
	}
	b.WriteString("</tr>")
	for _, r := range records {
		b.WriteString("<tr>")
		for _, c := range r.cells() {
			fmt.Fprintf(&b, "<td>%s</td>", html.EscapeString(c))
		}
		b.WriteString("<td>")
		for i, a := range r.tokenShares() {
			fmt.Fprintf(&b, `<mark style="background-color:%s;padding:1px 2px;margin:0 1px" title="%.4g">%s</mark>`, rgb(tokenColor(a)), a, html.EscapeString(r.Tokens[i]))
		}
		b.WriteString("</td></tr>")
	}
	b.WriteString("</table>\n")
	return b.String()
}

// TextPNG renders records as TextHTML does, as an image width pixels wide
// (0: 900); tokens wrap within the last column.
func TextPNG(records []TextRecord, width int) *image.RGBA {
	if width <= 0 {
		width = 900
	}
	face := newFace(13)
	defer face.Close()
	measure := func(s string) int { return font.MeasureString(face, s).Ceil() }
	const pad, lineH, legendH = 8, 20, 28
	// Column widths: each of the first four as wide as its widest text.
	colW := make([]int, 4)
	for k := range colW {
		colW[k] = measure(textHeader[k]) + 2*pad
		for _, r := range records {
			colW[k] = max(colW[k], measure(r.cells()[k])+2*pad)
		}
	}
	x0 := pad
	for _, w := range colW {
		x0 += w
	}
	wordW := max(width-x0-pad, 120)
	width = x0 + wordW + pad
	// Lay the tokens out, wrapping, to know each row's height.
	type placed struct {
		x, line int
		tok     string
		a       float64
	}
	rows := make([][]placed, len(records))
	rowH := make([]int, len(records))
	for i, r := range records {
		x, line := 0, 0
		for k, a := range r.tokenShares() {
			tw := measure(r.Tokens[k]) + 6
			if x > 0 && x+tw > wordW-pad {
				x, line = 0, line+1
			}
			rows[i] = append(rows[i], placed{x, line, r.Tokens[k], a})
			x += tw + 3
		}
		rowH[i] = (line+1)*lineH + pad
	}
	height := legendH + lineH + pad
	for _, h := range rowH {
		height += h
	}
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	box := func(x, y, w, h int, c color.RGBA) {
		draw.Draw(img, image.Rect(x, y, x+w, y+h), image.NewUniform(c), image.Point{}, draw.Src)
	}
	// Legend.
	x := pad
	drawText(img, face, "Legend:", x, 18, -1)
	x += measure("Legend:") + 8
	for _, l := range []struct {
		name string
		a    float64
	}{{"Negative", -1}, {"Neutral", 0}, {"Positive", 1}} {
		frame(img, rect{x, 6, 14, 14}, color.RGBA{180, 180, 180, 255})
		box(x, 6, 14, 14, tokenColor(l.a))
		x += 18
		drawText(img, face, l.name, x, 18, -1)
		x += measure(l.name) + 12
	}
	// Header and rows.
	gray := color.RGBA{200, 200, 200, 255}
	y := legendH
	cx := pad
	for k, h := range textHeader {
		drawText(img, face, h, cx+pad, y+14, -1)
		if k < 4 {
			cx += colW[k]
		}
	}
	y += lineH
	box(pad, y, width-2*pad, 1, gray)
	for i, r := range records {
		cx := pad
		for k, c := range r.cells() {
			drawText(img, face, c, cx+pad, y+pad+10, -1)
			cx += colW[k]
		}
		for _, p := range rows[i] {
			tw := measure(p.tok) + 6
			top := y + pad/2 + p.line*lineH
			box(x0+p.x, top, tw, lineH-3, tokenColor(p.a))
			drawText(img, face, p.tok, x0+p.x+3, top+13, -1)
		}
		y += rowH[i]
		box(pad, y-1, width-2*pad, 1, gray)
	}
	return img
}
