package viz

import (
	"fmt"
	"html"
	"math"
	"os"
	"slices"
	"strings"
)

// Series is one line of a plot.
type Series struct {
	Name string
	X, Y []float64
}

// LinePlotSVG draws series as lines in an SVG document of the given size
// (a series whose X and Y differ in length is drawn to the shorter),
// with axes, their ranges and a legend (deletion and insertion curves, time
// series).
func LinePlotSVG(title string, series []Series, width, height int) string {
	const m = 40.0
	minX, maxX, minY, maxY := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	series = slices.Clone(series)
	for k := range series {
		n := min(len(series[k].X), len(series[k].Y))
		series[k].X, series[k].Y = series[k].X[:n], series[k].Y[:n]
	}
	for _, s := range series {
		for i := range s.X {
			minX, maxX = math.Min(minX, s.X[i]), math.Max(maxX, s.X[i])
			minY, maxY = math.Min(minY, s.Y[i]), math.Max(maxY, s.Y[i])
		}
	}
	if !(maxX > minX) {
		maxX = minX + 1
	}
	if !(maxY > minY) {
		maxY = minY + 1
	}
	w, h := float64(width), float64(height)
	px := func(x float64) float64 { return m + (x-minX)/(maxX-minX)*(w-2*m) }
	py := func(y float64) float64 { return h - m - (y-minY)/(maxY-minY)*(h-2*m) }
	colors := []string{"#1b7837", "#b2182b", "#2166ac", "#762a83", "#e08214"}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/><text x="%g" y="16" font-size="13">%s</text>`, m, html.EscapeString(title))
	fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="black"/><line x1="%g" y1="%g" x2="%g" y2="%g" stroke="black"/>`, m, h-m, w-m, h-m, m, m, m, h-m)
	fmt.Fprintf(&b, `<text x="%g" y="%g">%.3g</text><text x="%g" y="%g" text-anchor="end">%.3g</text>`, m, h-m+14, minX, w-m, h-m+14, maxX)
	fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="end">%.3g</text><text x="%g" y="%g" text-anchor="end">%.3g</text>`, m-4, h-m, minY, m-4, m+4, maxY)
	for k, s := range series {
		c := colors[k%len(colors)]
		var pts []string
		for i := range s.X {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(s.X[i]), py(s.Y[i])))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`, c, strings.Join(pts, " "))
		fmt.Fprintf(&b, `<text x="%g" y="%g" fill="%s">%s</text>`, w-m-120, m+14*float64(k+1), c, html.EscapeString(s.Name))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// WriteSVG writes an SVG document to a file.
func WriteSVG(path, svg string) error {
	if err := os.WriteFile(path, []byte(svg), 0o644); err != nil {
		return fmt.Errorf("viz: %w", err)
	}
	return nil
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
// colored by attribution, OverlayCombined puts all channels in one plot
// over the summed attribution, ColoredGraph colors each line segment by
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
	cm := DefaultColormap(All)
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
				col := cm.At(position(norm(s), All))
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="rgb(%d,%d,%d)"/>`, float64(t)*dx-dx/2, top, dx, ph, col.R, col.G, col.B)
			}
		}
		for _, c := range chans {
			for t := 1; t < T; t++ {
				stroke := "black"
				if mode == ColoredGraph {
					col := cm.At(position(norm(attr[c][t]), All))
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
