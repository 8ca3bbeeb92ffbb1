package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/internal/explain"
	"github.com/loupe-ml/loupe/tensor"
	"github.com/loupe-ml/loupe/viz"
)

// writeSeries draws a time-series input ([N, T] or [N, C, T]) with its
// attributions, one SVG per example, in one of Captum's modes.
func writeSeries(dir string, i int, a, x *tensor.Tensor, mode string) ([]string, error) {
	if x.DType != tensor.Float32 || (x.Rank() != 2 && x.Rank() != 3) || !tensor.SameShape(a.Shape, x.Shape) {
		return nil, usageError{fmt.Errorf("--series: input %d has shape %v and attributions %v; want [N, T] or [N, C, T] floats", i, x.Shape, a.Shape)}
	}
	c, t := 1, x.Shape[1]
	if x.Rank() == 3 {
		c, t = x.Shape[1], x.Shape[2]
	}
	var files []string
	for e := 0; e < x.Shape[0]; e++ {
		data, at := make([][]float64, c), make([][]float64, c)
		for k := 0; k < c; k++ {
			data[k], at[k] = make([]float64, t), make([]float64, t)
			for j := 0; j < t; j++ {
				data[k][j] = float64(x.F[(e*c+k)*t+j])
				at[k][j] = float64(a.F[(e*c+k)*t+j])
			}
		}
		svg, err := viz.TimeSeriesSVG(data, at, mode, 800, 150*c)
		if err != nil {
			return files, usageError{fmt.Errorf("--series: %w", err)}
		}
		f := filepath.Join(dir, fmt.Sprintf("series_%d_%d.svg", i, e))
		if err := viz.WriteSVG(f, svg); err != nil {
			return files, err
		}
		files = append(files, f)
	}
	return files, nil
}

// writeText draws token attributions ([N, L] or [N, L, D], summed over D)
// of the first input as Captum's visualize_text does, with the model's
// prediction for each example, as text.html and text.png.
func writeText(ctx context.Context, dir, tokensFile string, nt *attr.Net, xs []*tensor.Tensor, a *tensor.Tensor, method string, p *pictures) ([]string, error) {
	b, err := os.ReadFile(tokensFile)
	if err != nil {
		return nil, fmt.Errorf("--tokens: %w", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if a.Rank() < 2 || len(lines) != a.Shape[0] {
		return nil, usageError{fmt.Errorf("--tokens %s: %d lines for %d examples; want one line of tokens per example", tokensFile, len(lines), a.Shape[0])}
	}
	scores := a
	if a.Rank() > 2 {
		if scores, err = attr.SumTokens(a); err != nil {
			return nil, err
		}
	}
	y, err := nt.Eval(ctx, xs)
	if err != nil {
		return nil, err
	}
	top, probs, err := attr.TopClasses(y)
	if err != nil {
		return nil, err
	}
	l := scores.Len() / scores.Shape[0]
	var recs []viz.TextRecord
	for e, line := range lines {
		toks := strings.Fields(line)
		if len(toks) != l {
			return nil, usageError{fmt.Errorf("--tokens %s line %d: %d tokens for %d attributions", tokensFile, e+1, len(toks), l)}
		}
		rec := viz.TextRecord{Tokens: toks, Attributions: make([]float64, l), PredictedLabel: strconv.Itoa(top[e]), PredictedProb: probs[e], AttributionLabel: method}
		for k := range rec.Attributions {
			rec.Attributions[k] = float64(scores.F[e*l+k])
			rec.AttributionScore += rec.Attributions[k]
		}
		recs = append(recs, rec)
	}
	var files []string
	if len(p.formats) > 0 {
		f := filepath.Join(dir, "text.html")
		if err := os.WriteFile(f, []byte("<!doctype html><meta charset=\"utf-8\">\n"+viz.TextHTML(recs)), 0o644); err != nil {
			return nil, err
		}
		png := filepath.Join(dir, "text.png")
		if err := viz.WritePNG(png, viz.TextPNG(recs, 0)); err != nil {
			return nil, err
		}
		files = append(files, f, png)
	}
	return files, nil
}

// pictures holds the explain command's picture options.
type pictures struct {
	views   []viz.ImageView // nil: the defaults
	o       viz.ImageOptions
	formats []string
	// title, if set, gives example e's figure title (else o.Title, with
	// the example's number in a batch).
	title func(e int) string
	// fileName, if set, gives example e's figure file name without its
	// extension (else attributions_<input>_<example>).
	fileName func(e int) string
	// classNames name the classes in titles.
	classNames []string
}

// pictureOptions checks the picture flags.
func pictureOptions(sign, views, cmap string, bar bool, title, size, format string) (*pictures, error) {
	s, err := viz.ParseSign(sign)
	if err != nil {
		return nil, err
	}
	p := &pictures{o: viz.ImageOptions{Sign: s, Colormap: cmap, ColorBar: bar, Title: title}}
	if cmap != "" {
		if _, err := viz.ColormapByName(cmap); err != nil {
			return nil, err
		}
	}
	if views != "" {
		for _, v := range strings.Split(views, ",") {
			v = strings.TrimSpace(v)
			if !slices.Contains(viz.ImageMethods(), v) {
				return nil, fmt.Errorf("--views: unknown visualization %q (want %s)", v, strings.Join(viz.ImageMethods(), ", "))
			}
			if s == viz.All && (v == viz.MethodMaskedImage || v == viz.MethodAlphaScaling) {
				return nil, fmt.Errorf("--views %s needs --sign positive, negative or absolute_value, not all", v)
			}
			title := strings.ReplaceAll(v, "_", " ")
			if v != viz.MethodOriginalImage {
				title += " (" + map[viz.Sign]string{viz.AbsoluteValue: "absolute value", viz.Positive: "positive part", viz.Negative: "negative part", viz.All: "both signs"}[s] + ")"
			}
			p.views = append(p.views, viz.ImageView{Method: v, Sign: s, Title: title})
		}
	}
	if size != "" {
		ws, hs, ok := strings.Cut(size, "x")
		w, err1 := strconv.Atoi(ws)
		h, err2 := strconv.Atoi(hs)
		if !ok || err1 != nil || err2 != nil || w < 50 || h < 50 || w > 10000 || h > 10000 {
			return nil, fmt.Errorf("--size %q: want WxH in pixels, e.g. 800x600, each from 50 to 10000", size)
		}
		p.o.Width, p.o.Height = w, h
	}
	switch format {
	case "png", "svg":
		p.formats = []string{format}
	case "both":
		p.formats = []string{"png", "svg"}
	case "none":
	default:
		return nil, fmt.Errorf("--format %q: want png, svg, both or none", format)
	}
	return p, nil
}

// writePictures draws the attributions of image-like inputs ([N, C, H, W]
// with 1 or 3 channels, or [N, H, W] maps) over shown (one picture
// [C, H, W], one per example [N, C, H, W], or nil: the input itself when
// it is an image), one figure per example (by
// default the heat map and, when the image has the attribution's size or
// the map is a coarser layer map, the heat map blended over it).
// It returns the files written.
func writePictures(dir string, i int, a, x, shown *tensor.Tensor, p *pictures) ([]string, error) {
	if (a.Rank() != 4 && a.Rank() != 3) || len(p.formats) == 0 {
		return nil, nil
	}
	var files []string
	for e := 0; e < a.Shape[0]; e++ {
		ae := explain.Example(a, e)
		if _, _, _, err := viz.Map2D(ae, false); err != nil {
			return files, nil // not an image: the .npy file is all
		}
		img := shown // one picture [C, H, W] for every example, or one each [N, C, H, W]
		switch {
		case img == nil:
			img = explain.Picture(x, e)
		case img.Rank() == 4:
			img = explain.Picture(shown, e)
		}
		o := p.o
		switch {
		case p.title != nil:
			o.Title = p.title(e)
		case a.Shape[0] > 1:
			o.Title = fmt.Sprintf("%s (example %d)", o.Title, e)
		}
		// A layer's coarser map (Grad-CAM) is drawn upsampled over the
		// image; the .npy file keeps the layer's resolution.
		fig, err := explain.Draw(ae, img, explain.Drawing{Views: p.views, Options: o})
		if err != nil {
			return files, err
		}
		for _, f := range p.formats {
			base := fmt.Sprintf("attributions_%d_%d", i, e)
			if p.fileName != nil {
				base = p.fileName(e)
			}
			name := filepath.Join(dir, base+"."+f)
			if err := fig.WriteFile(name); err != nil {
				return files, err
			}
			files = append(files, name)
		}
	}
	return files, nil
}
