package viz

import (
	"image"
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/tensor"
)

// testAttr is [3, 8, 8] with a strong positive cell at (2, 5), a negative
// one at (6, 1) and small values elsewhere.
func testAttr() *tensor.Tensor {
	a := tensor.New(3, 8, 8)
	for i := range a.F {
		a.F[i] = 0.001 * float32(i%5)
	}
	for k := 0; k < 3; k++ {
		a.F[k*64+2*8+5] = 1
		a.F[k*64+6*8+1] = -0.8
	}
	return a
}

// cellCenter returns the center of cell (y, x) of an h×w picture drawn in r.
func cellCenter(r rect, h, w, y, x int) (int, int) {
	return r.x + (2*x+1)*r.w/(2*w), r.y + (2*y+1)*r.h/(2*h)
}

func TestImageAttrHeatMap(t *testing.T) {
	fig, err := ImageAttr(testAttr(), nil, ImageOptions{Sign: Positive, ColorBar: true, Title: "IG"})
	if err != nil {
		t.Fatal(err)
	}
	img := fig.PNG()
	if b := img.Bounds(); b.Dx() != 600 || b.Dy() != 600 {
		t.Fatalf("figure of %v, want Captum's 600x600", b)
	}
	_, boxes := fig.layout()
	pic, bar := boxes[0].pic, boxes[0].bar
	if pic.w != pic.h || pic.w < 400 {
		t.Errorf("picture drawn in %+v: want a large square", pic)
	}
	greens := DefaultColormap(Positive)
	x, y := cellCenter(pic, 8, 8, 2, 5)
	if got := img.RGBAAt(x, y); got != greens.At(1) {
		t.Errorf("strongest cell drawn %v, want %v", got, greens.At(1))
	}
	x, y = cellCenter(pic, 8, 8, 6, 1)
	if got := img.RGBAAt(x, y); got != greens.At(0) {
		t.Errorf("negative cell in a positive map drawn %v, want %v", got, greens.At(0))
	}
	if top, bottom := img.RGBAAt(bar.x+bar.w/2, bar.y+1), img.RGBAAt(bar.x+bar.w/2, bar.y+bar.h-2); top.G > 100 || bottom.G < 240 {
		t.Errorf("color bar from %v (top) to %v (bottom): want dark to light green", top, bottom)
	}
	if n := darkPixels(img, boxes[0].title); n < 10 {
		t.Errorf("title: %d dark pixels in its box", n)
	}
	if n := darkPixels(img, rect{bar.x + bar.w + 4, bar.y - 8, 40, bar.h + 16}); n < 20 {
		t.Errorf("color bar labels: %d dark pixels", n)
	}
	svg := fig.SVG()
	for _, want := range []string{">IG</text>", "linearGradient", `fill="#00441b"`, ">0.5</text>"} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	if strings.Contains(svg, "<image") {
		t.Error("SVG heat map embeds a raster; want vector cells")
	}
}

func darkPixels(img *image.RGBA, r rect) int {
	n := 0
	for y := r.y; y < r.y+r.h; y++ {
		for x := r.x; x < r.x+r.w; x++ {
			if c := img.RGBAAt(x, y); c.R < 100 && c.G < 100 && c.B < 100 {
				n++
			}
		}
	}
	return n
}

func TestImageAttrLayoutsAndImages(t *testing.T) {
	a := testAttr()
	// [H, W, C] gives the same picture as [C, H, W].
	hwc := tensor.New(8, 8, 3)
	for k := 0; k < 3; k++ {
		for i := 0; i < 64; i++ {
			hwc.F[i*3+k] = a.F[k*64+i]
		}
	}
	img := tensor.New(3, 8, 8)
	img8 := tensor.NewInt(3, 8, 8)
	for i := range img.F {
		img8.I[i] = int64(i * 4 % 256)
		img.F[i] = float32(img8.I[i]) / 255
	}
	img8hwc := tensor.NewInt(8, 8, 3)
	for k := 0; k < 3; k++ {
		for i := 0; i < 64; i++ {
			img8hwc.I[i*3+k] = img8.I[k*64+i]
		}
	}
	for _, method := range ImageMethods() {
		o := ImageOptions{Method: method, Sign: AbsoluteValue, Width: 200, Height: 150}
		want, err := ImageAttr(a, img, o)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		o.ChannelsLast = true
		got, err := ImageAttr(hwc, img8hwc, o)
		if err != nil {
			t.Fatalf("%s, channels last, 8-bit: %v", method, err)
		}
		if !equalImages(want.PNG(), got.PNG()) {
			t.Errorf("%s: [H,W,C] with 8-bit pixels drawn differently from [C,H,W] in [0,1]", method)
		}
		if b := got.PNG().Bounds(); b.Dx() != 200 || b.Dy() != 150 {
			t.Errorf("%s: figure of %v, want 200x150", method, b)
		}
	}
	// Several views, each with its own title, and a figure title.
	fig, err := ImageAttrMultiple(a, img, []ImageView{{MethodOriginalImage, AbsoluteValue, "image"}, {MethodHeatMap, All, "all"}, {MethodMaskedImage, Positive, "masked"}},
		ImageOptions{Title: "three views", ColorBar: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(fig.Panels) != 3 || fig.Panels[0].Bar != nil || fig.Panels[1].Bar == nil || fig.Panels[1].BarRange != [2]float64{-1, 1} {
		t.Errorf("panels: %+v", fig.Panels)
	}
	title, boxes := fig.layout()
	png := fig.PNG()
	if darkPixels(png, title) < 20 {
		t.Error("figure title not drawn")
	}
	if !(boxes[0].pic.x+boxes[0].pic.w <= boxes[1].pic.x && boxes[1].pic.x+boxes[1].pic.w <= boxes[2].pic.x) {
		t.Errorf("views overlap: %+v", boxes)
	}
	// The "all" view: red for the negative cell, green for the positive.
	x, y := cellCenter(boxes[1].pic, 8, 8, 6, 1)
	if c := png.RGBAAt(x, y); !(c.R > 200 && c.G < 100) {
		t.Errorf("negative cell with sign all drawn %v, want red", c)
	}
	x, y = cellCenter(boxes[1].pic, 8, 8, 2, 5)
	if c := png.RGBAAt(x, y); c != (color.RGBA{0, 128, 0, 255}) {
		t.Errorf("positive cell with sign all drawn %v, want green", c)
	}
	dir := t.TempDir()
	for _, name := range []string{"f.png", "f.svg"} {
		if err := fig.WriteFile(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.Size() < 100 {
			t.Errorf("%s not written", name)
		}
	}
	if err := fig.WriteFile(filepath.Join(dir, "f.jpg")); err == nil {
		t.Error("a .jpg figure: no error")
	}
}

func equalImages(a, b *image.RGBA) bool {
	if a.Bounds() != b.Bounds() {
		return false
	}
	for i := range a.Pix {
		if d := int(a.Pix[i]) - int(b.Pix[i]); d > 1 || d < -1 {
			return false
		}
	}
	return true
}

func TestImageAttrErrors(t *testing.T) {
	a := testAttr()
	img := tensor.New(3, 8, 8)
	cases := []struct {
		name string
		attr *tensor.Tensor
		img  *tensor.Tensor
		o    ImageOptions
		want string
	}{
		{"masked all", a, img, ImageOptions{Method: MethodMaskedImage, Sign: All}, "not all"},
		{"alpha all", a, img, ImageOptions{Method: MethodAlphaScaling, Sign: All}, "not all"},
		{"blend without image", a, nil, ImageOptions{Method: MethodBlendedHeatMap}, "needs the original image"},
		{"unknown method", a, img, ImageOptions{Method: "hologram"}, `"hologram"`},
		{"image size", a, tensor.New(3, 8, 9), ImageOptions{Method: MethodBlendedHeatMap}, "8x9"},
		{"channels", a, tensor.New(4, 8, 8), ImageOptions{Method: MethodBlendedHeatMap}, "4 channels"},
		{"color map", a, img, ImageOptions{Colormap: "rainbowish"}, "rainbowish"},
		{"outliers", a, img, ImageOptions{OutlierPerc: 100}, "outlier"},
		{"attr rank", tensor.New(8), img, ImageOptions{}, "not an image"},
		{"nil attr", nil, img, ImageOptions{}, "no attributions"},
	}
	for _, c := range cases {
		_, err := ImageAttr(c.attr, c.img, c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.want)
		}
	}
	if _, err := ColormapByName("viridis_r"); err != nil {
		t.Error(err)
	}
}

func TestColormaps(t *testing.T) {
	for _, name := range ColormapNames() {
		c, err := ColormapByName(name)
		if err != nil {
			t.Fatal(err)
		}
		r, _ := ColormapByName(name + "_r")
		if c.At(0) != r.At(1) || c.At(1) != r.At(0) || c.At(0.3) != r.At(0.7) {
			t.Errorf("%s reversed is not the mirror image", name)
		}
	}
	v, _ := ColormapByName("viridis")
	if got := v.At(0.5); got.G < 130 || got.G > 150 {
		t.Errorf("viridis(0.5) = %v, want about #21918c", got)
	}
}

func TestTextPNG(t *testing.T) {
	rec := TextRecord{Tokens: []string{"a", "truly", "wonderful", "film", "<pad>"}, Attributions: []float64{0.1, 0.3, 0.9, 0.2, -0.45},
		TrueLabel: "pos", PredictedLabel: "pos", PredictedProb: 0.93, AttributionLabel: "pos", AttributionScore: 1.2}
	one := TextPNG([]TextRecord{rec}, 700)
	if one.Bounds().Dx() != 700 {
		t.Errorf("width %d, want 700", one.Bounds().Dx())
	}
	count := func(img *image.RGBA, c color.RGBA) int {
		n := 0
		for y := 0; y < img.Bounds().Dy(); y++ {
			for x := 0; x < img.Bounds().Dx(); x++ {
				if img.RGBAAt(x, y) == c {
					n++
				}
			}
		}
		return n
	}
	// "wonderful" has the largest attribution: its box is Captum's
	// strongest green; "<pad>" (-0.5 of it) a red.
	if n := count(one, tokenColor(1)); n < 100 {
		t.Errorf("strongest token's color covers %d pixels", n)
	}
	if n := count(one, tokenColor(-0.5)); n < 50 {
		t.Errorf("negative token's color covers %d pixels", n)
	}
	if got := tokenColor(1); got != (color.RGBA{32, 223, 32, 255}) {
		t.Errorf("hsl(120, 75%%, 50%%) = %v", got)
	}
	// Many tokens wrap onto more lines.
	long := rec
	for i := 0; i < 60; i++ {
		long.Tokens = append(long.Tokens, "word")
	}
	if two := TextPNG([]TextRecord{rec, long}, 700); two.Bounds().Dy() < one.Bounds().Dy()+60 {
		t.Errorf("two records, one long, %d pixels high; one record %d", two.Bounds().Dy(), one.Bounds().Dy())
	}
	h := TextHTML([]TextRecord{rec})
	for _, want := range []string{"Legend", "rgb(32,223,32)", "pos (0.93)", "1.20", "&lt;pad&gt;"} {
		if !strings.Contains(h, want) {
			t.Errorf("text HTML lacks %q", want)
		}
	}
}

// Time series: each segment or background cell takes its attribution's
// color in the red-white-green map.
func TestTimeSeriesColors(t *testing.T) {
	data := [][]float64{{0, 1, 0, 1}}
	at := [][]float64{{0, 1, 0, -1}}
	svg, err := TimeSeriesSVG(data, at, ColoredGraph, 300, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`stroke="rgb(0,128,0)"`, `stroke="rgb(255,0,0)"`} {
		if !strings.Contains(svg, want) {
			t.Errorf("colored_graph lacks a segment with %s", want)
		}
	}
	svg, err = TimeSeriesSVG(data, at, OverlayIndividual, 300, 100)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(svg, `fill="rgb(0,128,0)"`) || !strings.Contains(svg, `fill="rgb(255,0,0)"`) || strings.Count(svg, "<rect") != 5 {
		t.Errorf("overlay_individual: want a background cell per step (4) in the attribution's color, got\n%s", svg)
	}
}

// Large heat maps are embedded in SVG figures as PNG, small ones drawn as
// cells.
func TestSVGLargeHeatMap(t *testing.T) {
	a := tensor.New(1, 200, 200)
	for i := range a.F {
		a.F[i] = float32(i % 17)
	}
	fig, err := ImageAttr(a, nil, ImageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svg := fig.SVG()
	if !strings.Contains(svg, "<image") || len(svg) > 500000 {
		t.Errorf("200x200 heat map: %d bytes of SVG, embedded image %v", len(svg), strings.Contains(svg, "<image"))
	}
}
