package viz

import (
	"fmt"
	"html"
	"math"
	"os"
	"strings"
)

// Series is one line of a plot.
type Series struct {
	Name string
	X, Y []float64
}

// LinePlotSVG draws series as lines in an SVG document of the given size,
// with axes, their ranges and a legend (deletion and insertion curves, time
// series).
func LinePlotSVG(title string, series []Series, width, height int) string {
	const m = 40.0
	minX, maxX, minY, maxY := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
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
