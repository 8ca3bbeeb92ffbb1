package viz

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html"
	"image"
	"image/png"
	"math"
	"strings"
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

// TextHTML renders records as an HTML table, each token's background green
// for positive and red for negative attribution, its strength the
// attribution over the record's largest absolute value (Captum's
// visualize_text).
func TextHTML(records []TextRecord) string {
	var b strings.Builder
	b.WriteString(`<table style="border-collapse:collapse;font-family:sans-serif;font-size:13px">` +
		`<tr><th>True label</th><th>Predicted label</th><th>Attribution label</th><th>Attribution score</th><th>Word importance</th></tr>`)
	for _, r := range records {
		m := 0.0
		for _, a := range r.Attributions {
			m = math.Max(m, math.Abs(a))
		}
		fmt.Fprintf(&b, "<tr><td>%s</td><td>%s (%.2f)</td><td>%s</td><td>%.2f</td><td>", html.EscapeString(r.TrueLabel),
			html.EscapeString(r.PredictedLabel), r.PredictedProb, html.EscapeString(r.AttributionLabel), r.AttributionScore)
		for i, tok := range r.Tokens {
			a := 0.0
			if i < len(r.Attributions) && m > 0 {
				a = r.Attributions[i] / m
			}
			c := colour(a, All)
			fmt.Fprintf(&b, `<mark style="background-color:rgb(%d,%d,%d);padding:1px 2px;margin:0 1px" title="%.4g">%s</mark>`, c.R, c.G, c.B, a*m, html.EscapeString(tok))
		}
		b.WriteString("</td></tr>")
	}
	b.WriteString("</table>\n")
	return b.String()
}

// View is one picture of a grid with its title.
type View struct {
	Title string
	Image image.Image
}

// GridSVG lays views out side by side, cols per row, each under its title,
// in one SVG document with the pictures embedded (Captum's
// visualize_image_attr_multiple).
func GridSVG(views []View, cols int) (string, error) {
	cols = max(cols, 1)
	cw, ch := 0, 0
	for _, v := range views {
		cw = max(cw, v.Image.Bounds().Dx())
		ch = max(ch, v.Image.Bounds().Dy())
	}
	const title, pad = 18, 8
	rows := (len(views) + cols - 1) / cols
	W, H := cols*(cw+pad)+pad, rows*(ch+title+pad)+pad
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12"><rect width="100%%" height="100%%" fill="white"/>`, W, H)
	for i, v := range views {
		x := pad + (i%cols)*(cw+pad)
		y := pad + (i/cols)*(ch+title+pad)
		var buf bytes.Buffer
		if err := png.Encode(&buf, v.Image); err != nil {
			return "", err
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`, x, y+12, html.EscapeString(v.Title))
		fmt.Fprintf(&b, `<image x="%d" y="%d" width="%d" height="%d" href="data:image/png;base64,%s"/>`, x, y+title, v.Image.Bounds().Dx(), v.Image.Bounds().Dy(), base64.StdEncoding.EncodeToString(buf.Bytes()))
	}
	b.WriteString("</svg>\n")
	return b.String(), nil
}

// Time-series modes, with Captum's names.
const (
	OverlayIndividual = "overlay_individual"
	OverlayCombined   = "overlay_combined"
	ColoredGraph      = "colored_graph"
)

// TimeSeriesSVG draws a multichannel series data[channel][t] with its
// attributions attr[channel][t] (Captum's visualize_timeseries_attr):
// OverlayIndividual gives each channel its own plot over a background
// coloured by attribution, OverlayCombined puts all channels in one plot
// over the summed attribution, ColoredGraph colours each line segment by
// its attribution.
func TimeSeriesSVG(data, attr [][]float64, mode string, width, height int) (string, error) {
	if len(data) == 0 || len(data) != len(attr) {
		return "", fmt.Errorf("viz: %d channels of data and %d of attributions", len(data), len(attr))
	}
	T := len(data[0])
	for c := range data {
		if len(data[c]) != T || len(attr[c]) != T {
			return "", fmt.Errorf("viz: channel %d has %d values and %d attributions, channel 0 has %d", c, len(data[c]), len(attr[c]), T)
		}
	}
	m := 0.0
	for _, a := range attr {
		for _, v := range a {
			m = math.Max(m, math.Abs(v))
		}
	}
	norm := func(v float64) float64 {
		if m == 0 {
			return 0
		}
		return v / m
	}
	panels := len(data)
	switch mode {
	case OverlayCombined:
		panels = 1
	case OverlayIndividual, ColoredGraph:
	default:
		return "", fmt.Errorf("viz: unknown time-series mode %q (want overlay_individual, overlay_combined or colored_graph)", mode)
	}
	ph := float64(height) / float64(panels)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d"><rect width="100%%" height="100%%" fill="white"/>`, width, height)
	dx := float64(width) / float64(max(T-1, 1))
	for p := 0; p < panels; p++ {
		top := float64(p) * ph
		chans := []int{p}
		if mode == OverlayCombined {
			chans = make([]int, len(data))
			for c := range chans {
				chans[c] = c
			}
		}
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, c := range chans {
			for _, v := range data[c] {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
		if !(hi > lo) {
			hi = lo + 1
		}
		y := func(v float64) float64 { return top + 4 + (hi-v)/(hi-lo)*(ph-8) }
		if mode != ColoredGraph {
			for t := 0; t < T; t++ {
				s := 0.0
				for _, c := range chans {
					s += attr[c][t]
				}
				if mode == OverlayCombined {
					s /= float64(len(chans))
				}
				col := colour(norm(s), All)
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="rgb(%d,%d,%d)"/>`, float64(t)*dx-dx/2, top, dx, ph, col.R, col.G, col.B)
			}
		}
		for _, c := range chans {
			for t := 1; t < T; t++ {
				stroke := "black"
				if mode == ColoredGraph {
					col := colour(norm(attr[c][t]), All)
					if norm(attr[c][t]) == 0 {
						col.R, col.G, col.B = 128, 128, 128
					}
					stroke = fmt.Sprintf("rgb(%d,%d,%d)", col.R, col.G, col.B)
				}
				fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/>`, float64(t-1)*dx, y(data[c][t-1]), float64(t)*dx, y(data[c][t]), stroke)
			}
		}
	}
	b.WriteString("</svg>\n")
	return b.String(), nil
}
