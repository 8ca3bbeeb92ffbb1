package viz

import (
	"image"
	"image/color"
	"math"

	"golang.org/x/image/font"
)

// BoxMark is a box to draw on a picture: x1, y1, x2, y2 in the image's
// pixels (x2 and y2 exclusive), an outline color and an optional label
// written above the box (inside it when there is no room above).
type BoxMark struct {
	Box   [4]float64
	Color color.RGBA
	Label string
}

// DrawBoxes outlines boxes on pic, a picture of an image scaled up by an
// integer factor (as Original and Blend make them): box coordinates are
// multiplied by scale. Outlines are 2 pixels wide; parts outside the
// picture are clipped; labels are drawn on a band of the box's color.
func DrawBoxes(pic *image.RGBA, boxes []BoxMark, scale int) {
	if pic == nil {
		return
	}
	scale = max(scale, 1)
	b := pic.Bounds()
	face := newFace(10)
	defer face.Close()
	for _, m := range boxes {
		var r [4]int
		ok := true
		for i, v := range m.Box {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				ok = false
				break
			}
			r[i] = int(math.Round(math.Max(-1e6, math.Min(1e6, v*float64(scale)))))
		}
		if !ok || r[2] <= r[0] || r[3] <= r[1] {
			continue
		}
		fill := func(x0, y0, x1, y1 int, c color.RGBA) {
			x0, y0 = max(x0, b.Min.X), max(y0, b.Min.Y)
			x1, y1 = min(x1, b.Max.X), min(y1, b.Max.Y)
			for y := y0; y < y1; y++ {
				for x := x0; x < x1; x++ {
					pic.SetRGBA(x, y, c)
				}
			}
		}
		const t = 2
		fill(r[0], r[1], r[2], r[1]+t, m.Color)
		fill(r[0], r[3]-t, r[2], r[3], m.Color)
		fill(r[0], r[1], r[0]+t, r[3], m.Color)
		fill(r[2]-t, r[1], r[2], r[3], m.Color)
		if m.Label == "" {
			continue
		}
		const lh = 13
		y := r[1] - lh
		if y < b.Min.Y {
			y = r[1] + t
		}
		w := font.MeasureString(face, m.Label).Round() + 4
		fill(r[0], y, r[0]+w, y+lh, m.Color)
		drawText(pic, face, m.Label, r[0]+2, y+lh-3, -1)
	}
}
