package viz

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
)

// Figure is a picture ready to be written: a title over one or more
// panels, each a view with its own title and, optionally, a color bar.
// ImageAttr and ImageAttrMultiple make figures; PNG and SVG render them
// (the SVG keeps heat maps as vector cells and text as text).
type Figure struct {
	Title string
	// Width and Height are the figure's size in pixels.
	Width, Height int
	// Cols is the number of panels per row; 0 puts them all in one row.
	Cols   int
	Panels []Panel
}

// Panel is one view of a Figure.
type Panel struct {
	Title string
	// Picture is the view at its own resolution (one pixel per attribution
	// cell); figures scale it to fit.
	Picture *image.RGBA
	// Vector asks the SVG renderer to draw Picture as colored cells
	// rather than embed it as a PNG (heat maps); pictures of more than
	// MaxVectorCells pixels are embedded all the same (a 224×224 map would
	// take megabytes of rectangles).
	Vector bool
	// Bar, when set, draws a color bar of this map beside the picture,
	// labelled from BarRange[0] (bottom) to BarRange[1] (top).
	Bar      *Colormap
	BarRange [2]float64
}

const (
	figPad    = 10 // space around and between panels
	figTitleH = 30 // height of the figure's title line
	panTitleH = 20 // height of a panel's title line
	barW      = 14 // width of a color bar
	barSpace  = 56 // room taken by a color bar and its labels
)

// MaxVectorCells is the largest picture an SVG figure draws as cells.
const MaxVectorCells = 128 * 128

type rect struct{ x, y, w, h int }

type panelBoxes struct{ title, pic, bar rect }

// layout places the figure's title and each panel's title, picture and
// color bar.
func (f *Figure) layout() (rect, []panelBoxes) {
	W, H := f.Width, f.Height
	cols := f.Cols
	if cols <= 0 || cols > len(f.Panels) {
		cols = max(len(f.Panels), 1)
	}
	rows := (len(f.Panels) + cols - 1) / cols
	top := figPad
	var title rect
	if f.Title != "" {
		title = rect{figPad, figPad, W - 2*figPad, figTitleH}
		top += figTitleH
	}
	cw := max((W-figPad)/cols-figPad, 1)
	ch := max((H-top)/max(rows, 1)-figPad, 1)
	boxes := make([]panelBoxes, len(f.Panels))
	for i, p := range f.Panels {
		x := figPad + (i%cols)*(cw+figPad)
		y := top + (i/cols)*(ch+figPad)
		var b panelBoxes
		if p.Title != "" {
			b.title = rect{x, y, cw, panTitleH}
			y += panTitleH
		}
		aw, ah := cw, ch-b.title.h
		if p.Bar != nil {
			aw -= barSpace
		}
		aw, ah = max(aw, 1), max(ah, 1)
		pw, ph := 1, 1
		if p.Picture != nil {
			pw, ph = p.Picture.Bounds().Dx(), p.Picture.Bounds().Dy()
		}
		// Fit the picture, keeping its aspect ratio.
		sw, sh := aw, aw*ph/max(pw, 1)
		if sh > ah {
			sw, sh = ah*pw/max(ph, 1), ah
		}
		sw, sh = max(sw, 1), max(sh, 1)
		b.pic = rect{x + (aw-sw)/2, y + (ah-sh)/2, sw, sh}
		if p.Bar != nil {
			b.bar = rect{b.pic.x + sw + 8, b.pic.y, barW, sh}
		}
		boxes[i] = b
	}
	return title, boxes
}

// barTicks are the labels of a color bar: its ends and middle.
func barTicks(r [2]float64) [3]float64 {
	return [3]float64{r[0], (r[0] + r[1]) / 2, r[1]}
}

// PNG renders the figure as an image.
func (f *Figure) PNG() *image.RGBA {
	W, H := max(f.Width, 1), max(f.Height, 1)
	out := image.NewRGBA(image.Rect(0, 0, W, H))
	draw.Draw(out, out.Bounds(), image.White, image.Point{}, draw.Src)
	title, boxes := f.layout()
	tf, pf := newFace(16), newFace(12)
	defer tf.Close()
	defer pf.Close()
	if f.Title != "" {
		drawText(out, tf, f.Title, title.x+title.w/2, title.y+20, 0)
	}
	for i, p := range f.Panels {
		b := boxes[i]
		if p.Title != "" {
			drawText(out, pf, p.Title, b.title.x+b.title.w/2, b.title.y+14, 0)
		}
		if p.Picture != nil {
			scaleInto(out, p.Picture, b.pic)
			frame(out, b.pic, color.RGBA{200, 200, 200, 255})
		}
		if p.Bar != nil {
			for y := 0; y < b.bar.h; y++ {
				c := p.Bar.At(1 - float64(y)/float64(max(b.bar.h-1, 1)))
				for x := 0; x < b.bar.w; x++ {
					out.SetRGBA(b.bar.x+x, b.bar.y+y, c)
				}
			}
			frame(out, b.bar, color.RGBA{0, 0, 0, 255})
			for k, t := range barTicks(p.BarRange) {
				y := b.bar.y + b.bar.h - 1 - k*(b.bar.h-1)/2
				for x := 0; x < 4; x++ {
					out.SetRGBA(b.bar.x+b.bar.w+x, y, color.RGBA{0, 0, 0, 255})
				}
				drawText(out, pf, fmt.Sprintf("%.3g", t), b.bar.x+b.bar.w+6, y+4, -1)
			}
		}
	}
	return out
}

// scaleInto draws src into r of dst by nearest neighbor, compositing
// transparent pixels over what is there.
func scaleInto(dst *image.RGBA, src *image.RGBA, r rect) {
	sb := src.Bounds()
	for y := 0; y < r.h; y++ {
		sy := sb.Min.Y + y*sb.Dy()/r.h
		for x := 0; x < r.w; x++ {
			sx := sb.Min.X + x*sb.Dx()/r.w
			c := src.RGBAAt(sx, sy)
			if c.A == 255 {
				dst.SetRGBA(r.x+x, r.y+y, c)
				continue
			}
			d := dst.RGBAAt(r.x+x, r.y+y)
			a := float64(c.A) / 255
			mix := func(s, t uint8) uint8 { return uint8(a*float64(s) + (1-a)*float64(t) + 0.5) }
			dst.SetRGBA(r.x+x, r.y+y, color.RGBA{mix(c.R, d.R), mix(c.G, d.G), mix(c.B, d.B), 255})
		}
	}
}

func frame(dst *image.RGBA, r rect, c color.RGBA) {
	for x := r.x - 1; x <= r.x+r.w; x++ {
		dst.SetRGBA(x, r.y-1, c)
		dst.SetRGBA(x, r.y+r.h, c)
	}
	for y := r.y - 1; y <= r.y+r.h; y++ {
		dst.SetRGBA(r.x-1, y, c)
		dst.SetRGBA(r.x+r.w, y, c)
	}
}

// goRegular is the Go font, parsed once; it is never written after.
var goRegular = sync.OnceValue(func() *opentype.Font {
	f, err := opentype.Parse(goregular.TTF)
	if err != nil {
		panic("viz: the embedded Go font does not parse: " + err.Error())
	}
	return f
})

// newFace returns a face of the Go font at size points (72 dpi: pixels).
// Faces are not safe for concurrent use; each rendering makes its own.
func newFace(size float64) font.Face {
	face, err := opentype.NewFace(goRegular(), &opentype.FaceOptions{Size: size, DPI: 72, Hinting: font.HintingFull})
	if err != nil {
		panic("viz: " + err.Error())
	}
	return face
}

// drawText draws s in black with its baseline at y; anchor -1 puts its
// left end at x, 0 its middle, 1 its right end.
func drawText(dst *image.RGBA, face font.Face, s string, x, y, anchor int) {
	d := font.Drawer{Dst: dst, Src: image.Black, Face: face}
	w := d.MeasureString(s).Round()
	switch anchor {
	case 0:
		x -= w / 2
	case 1:
		x -= w
	}
	d.Dot = fixed.P(x, y)
	d.DrawString(s)
}

// SVG renders the figure as an SVG document.
func (f *Figure) SVG() string {
	W, H := max(f.Width, 1), max(f.Height, 1)
	title, boxes := f.layout()
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`, W, H, W, H)
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>`)
	if f.Title != "" {
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="16" text-anchor="middle">%s</text>`, title.x+title.w/2, title.y+20, html.EscapeString(f.Title))
	}
	for i, p := range f.Panels {
		bx := boxes[i]
		if p.Title != "" {
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`, bx.title.x+bx.title.w/2, bx.title.y+14, html.EscapeString(p.Title))
		}
		if p.Picture != nil {
			if p.Vector && p.Picture.Bounds().Dx()*p.Picture.Bounds().Dy() <= MaxVectorCells {
				svgCells(&b, p.Picture, bx.pic)
			} else {
				var buf bytes.Buffer
				_ = png.Encode(&buf, p.Picture) // writing to memory cannot fail
				fmt.Fprintf(&b, `<image x="%d" y="%d" width="%d" height="%d" preserveAspectRatio="none" style="image-rendering:pixelated" href="data:image/png;base64,%s"/>`,
					bx.pic.x, bx.pic.y, bx.pic.w, bx.pic.h, base64.StdEncoding.EncodeToString(buf.Bytes()))
			}
		}
		if p.Bar != nil {
			id := fmt.Sprintf("bar%d", i)
			fmt.Fprintf(&b, `<defs><linearGradient id="%s" x1="0" y1="1" x2="0" y2="0">`, id)
			for k, c := range p.Bar.stops {
				fmt.Fprintf(&b, `<stop offset="%.4f" stop-color="#%02x%02x%02x"/>`, float64(k)/float64(max(len(p.Bar.stops)-1, 1)), c.R, c.G, c.B)
			}
			fmt.Fprintf(&b, `</linearGradient></defs><rect x="%d" y="%d" width="%d" height="%d" fill="url(#%s)" stroke="black"/>`, bx.bar.x, bx.bar.y, bx.bar.w, bx.bar.h, id)
			for k, t := range barTicks(p.BarRange) {
				y := bx.bar.y + bx.bar.h - 1 - k*(bx.bar.h-1)/2
				fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/><text x="%d" y="%d">%.3g</text>`,
					bx.bar.x+bx.bar.w, y, bx.bar.x+bx.bar.w+4, y, bx.bar.x+bx.bar.w+6, y+4, t)
			}
		}
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// svgCells draws a picture as rectangles, one per run of equal pixels in a
// row, scaled into r.
func svgCells(b *strings.Builder, pic *image.RGBA, r rect) {
	pb := pic.Bounds()
	sx, sy := float64(r.w)/float64(pb.Dx()), float64(r.h)/float64(pb.Dy())
	fmt.Fprintf(b, `<g shape-rendering="crispEdges">`)
	for y := 0; y < pb.Dy(); y++ {
		for x := 0; x < pb.Dx(); {
			c := pic.RGBAAt(pb.Min.X+x, pb.Min.Y+y)
			e := x + 1
			for e < pb.Dx() && pic.RGBAAt(pb.Min.X+e, pb.Min.Y+y) == c {
				e++
			}
			fmt.Fprintf(b, `<rect x="%.2f" y="%.2f" width="%.2f" height="%.2f" fill="#%02x%02x%02x"`, float64(r.x)+float64(x)*sx, float64(r.y)+float64(y)*sy, float64(e-x)*sx, sy, c.R, c.G, c.B)
			if c.A != 255 {
				fmt.Fprintf(b, ` fill-opacity="%.3f"`, float64(c.A)/255)
			}
			b.WriteString("/>")
			x = e
		}
	}
	b.WriteString("</g>")
}

// WriteFile writes the figure as PNG or SVG, chosen by the file's
// extension (.png or .svg).
func (f *Figure) WriteFile(path string) error {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".png":
		return WritePNG(path, f.PNG())
	case ".svg":
		return WriteSVG(path, f.SVG())
	}
	return fmt.Errorf("viz: %s: want a .png or .svg file name", path)
}

// View is one picture of a grid with its title.
type View struct {
	Title string
	Image image.Image
}

// GridSVG lays views out side by side, cols per row, each under its title,
// in one SVG document with the pictures embedded at their own size
// (Captum's visualize_image_attr_multiple for pictures already drawn).
func GridSVG(views []View, cols int) (string, error) {
	if len(views) == 0 {
		return "", fmt.Errorf("viz: no views to lay out")
	}
	cols = min(max(cols, 1), len(views))
	cw, ch := 0, 0
	fig := &Figure{Cols: cols}
	for i, v := range views {
		if v.Image == nil {
			return "", fmt.Errorf("viz: view %d (%q) has no image", i, v.Title)
		}
		b := v.Image.Bounds()
		if b.Dx()*b.Dy() > MaxPixels {
			return "", fmt.Errorf("viz: view %d (%q) is %dx%d, over %d pixels", i, v.Title, b.Dx(), b.Dy(), MaxPixels)
		}
		cw, ch = max(cw, b.Dx()), max(ch, b.Dy())
		pic := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
		draw.Draw(pic, pic.Bounds(), v.Image, b.Min, draw.Src)
		fig.Panels = append(fig.Panels, Panel{Title: v.Title, Picture: pic})
	}
	rows := (len(views) + cols - 1) / cols
	fig.Width = cols*(cw+figPad) + figPad
	fig.Height = rows*(ch+panTitleH+figPad) + figPad
	return fig.SVG(), nil
}
