// Command loupe explains machine-learning models from the terminal: which
// input features, neurons and layers drove a prediction.
//
//	loupe demo [--out dir]                 run several methods on the built-in model
//	loupe explain --model m.onnx --input x.npy --method IntegratedGradients --target 3 [--param n_steps=200] [--layer layer4] --out dir
//	loupe layers --model m.onnx            the layers a user can name
//	loupe methods                          the methods, their parameters and defaults
//	loupe insights [--model m.onnx --data dir] [--addr localhost:8080]   browse predictions and attributions in a web app
//
// Exit status: 0 on success, 1 on a failure while running, 2 on bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/internal/demo"
	"github.com/loupe-ml/loupe/internal/methods"
	"github.com/loupe-ml/loupe/internal/picture"
	"github.com/loupe-ml/loupe/npy"
	"github.com/loupe-ml/loupe/preprocess"
	"github.com/loupe-ml/loupe/tensor"
	"github.com/loupe-ml/loupe/viz"
)

// usageError marks errors in how loupe was called (exit status 2).
type usageError struct{ error }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "loupe:", err)
	var ue usageError
	if errors.As(err, &ue) {
		os.Exit(2)
	}
	os.Exit(1)
}

const usage = `usage:
  loupe demo [--out dir] [--quiet]
  loupe explain --model m.onnx --input x.npy|image.png --method NAME [--target T] [--param k=v]... [--layer L]
                [--baseline v | --baselines b.npy] [--extra name=file.npy] [--resize N --crop N --mean m,m,m --std s,s,s] [--out dir] [--quiet]
  loupe layers --model m.onnx
  loupe methods
  loupe insights [--model m.onnx --data dir [--labels labels.csv] [--classes names.txt]] [--addr host:port]`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{errors.New("no command\n" + usage)}
	}
	switch args[0] {
	case "demo":
		return cmdDemo(ctx, args[1:], stdout, stderr)
	case "explain":
		return cmdExplain(ctx, args[1:], stdout, stderr)
	case "layers":
		return cmdLayers(args[1:], stdout, stderr)
	case "methods":
		return cmdMethods(stdout)
	case "insights":
		return cmdInsights(ctx, args[1:], stdout, stderr, nil)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	return usageError{fmt.Errorf("unknown command %q\n%s", args[0], usage)}
}

// progressBar draws a bar on w, or nothing when quiet.
func progressBar(w io.Writer, label string, quiet bool) func(done, total int) {
	if quiet {
		return nil
	}
	start := time.Now()
	return func(done, total int) {
		if total <= 0 {
			return
		}
		const width = 30
		n := done * width / total
		fmt.Fprintf(w, "\r%s [%s%s] %d/%d %s", label, strings.Repeat("#", n), strings.Repeat(".", width-n), done, total, time.Since(start).Round(100*time.Millisecond))
		if done >= total {
			fmt.Fprintln(w)
		}
	}
}

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "loupe-demo", "folder for the report")
	quiet := fs.Bool("quiet", false, "no progress bar")
	per := fs.Int("per-class", 2, "images of each shape")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	rep, err := demo.Run(ctx, *out, *per, progressBar(stderr, "explaining", *quiet))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s\n", filepath.Join(*out, "index.html"))
	fmt.Fprintf(stdout, "share of positive attribution on the shape (an even spread would give %.2f):\n", rep.ChanceInMask)
	for _, m := range rep.Methods {
		fmt.Fprintf(stdout, "  %-20s %.2f\n", m, rep.MeanInMask[m])
	}
	fmt.Fprintln(stdout, "to browse more examples and methods in a web app: loupe insights")
	return nil
}

// loadModel loads an ONNX file, or the built-in model for "demo".
func loadModel(path string) (*engine.Model, error) {
	if path == "" {
		return nil, usageError{errors.New("--model is required (an .onnx file, or \"demo\" for the built-in model)")}
	}
	if path == "demo" {
		return demo.Model()
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	return engine.Load(path)
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, " ") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

func cmdExplain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	model := fs.String("model", "", "ONNX model file (\"demo\": the built-in model)")
	var inputs, ps, extras multi
	fs.Var(&inputs, "input", "input as a .npy file, batch first (repeat for several inputs, in the model's order)")
	fs.Var(&extras, "extra", "name=file.npy: a model input fed but not attributed (additional_forward_args; repeatable)")
	name := fs.String("method", "IntegratedGradients", "attribution method (see loupe methods)")
	target := fs.String("target", "", "output index explained: one number, or one per example separated by commas")
	fs.Var(&ps, "param", "method parameter name=value (repeatable)")
	layer := fs.String("layer", "", "layer for layer methods: module path (layer4, fc) or tensor name")
	baseline := fs.Float64("baseline", 0, "baseline value for methods that take one")
	var baselineFiles multi
	fs.Var(&baselineFiles, "baselines", "baselines as a .npy file, one per input: a tensor that broadcasts to the input, or for the Shap methods a distribution (rows to draw from)")
	out := fs.String("out", "loupe-out", "folder for the attributions")
	quiet := fs.Bool("quiet", false, "no progress bar")
	imageOptions := imageFlags(fs)
	signName := fs.String("sign", "absolute_value", "pictures: absolute_value, positive, negative or all")
	views := fs.String("views", "", "pictures: visualizations side by side, from "+strings.Join(viz.ImageMethods(), ", ")+
		" (default heat_map, and blended_heat_map when the input is an image)")
	cmap := fs.String("cmap", "", "pictures: color map ("+strings.Join(viz.ColormapNames(), ", ")+"; default per sign)")
	colorBar := fs.Bool("colorbar", true, "pictures: draw color bars")
	title := fs.String("title", "", "pictures: figure title (default: method and target)")
	size := fs.String("size", "", "pictures: figure size in pixels, WxH (default 600 per view by 600)")
	format := fs.String("format", "png", "pictures: png, svg, both or none")
	series := fs.String("series", "", "time-series inputs ([N, T] or [N, C, T]): draw each example as overlay_individual, overlay_combined or colored_graph (SVG)")
	tokensFile := fs.String("tokens", "", "text inputs: a file of the examples' tokens, one example a line, tokens separated by spaces; draws the attributions summed per token as HTML and PNG")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	pics, err := pictureOptions(*signName, *views, *cmap, *colorBar, *title, *size, *format)
	if err != nil {
		return usageError{err}
	}
	if pics.o.Title == "" {
		pics.o.Title = *name
		if *target != "" {
			pics.o.Title += ", target " + *target
		}
	}
	pre, err := imageOptions()
	if err != nil {
		return err
	}
	mt, ok := methods.Lookup(*name)
	if !ok {
		return usageError{fmt.Errorf("unknown method %q (see loupe methods)", *name)}
	}
	p, err := methods.Resolve(*name, mt, ps)
	if err != nil {
		return usageError{err}
	}
	m, err := loadModel(*model)
	if err != nil {
		return err
	}
	var extraNames []string
	var extraVals []*tensor.Tensor
	for _, kv := range extras {
		name, file, ok := strings.Cut(kv, "=")
		if !ok {
			return usageError{fmt.Errorf("--extra %q: want name=file.npy", kv)}
		}
		t, err := npy.ReadFile(file)
		if err != nil {
			return fmt.Errorf("--extra %s: %w", name, err)
		}
		extraNames = append(extraNames, name)
		extraVals = append(extraVals, t)
	}
	nt, err := attr.NewNet(m, extraNames...)
	if err != nil {
		return usageError{err}
	}
	if len(inputs) != len(nt.Inputs) {
		return usageError{fmt.Errorf("the model takes %d inputs (%s); give each with --input x.npy", len(nt.Inputs), strings.Join(nt.Inputs, ", "))}
	}
	xs := make([]*tensor.Tensor, len(inputs))
	shown := make([]*tensor.Tensor, len(inputs))
	for i, f := range inputs {
		if xs[i], shown[i], err = readInput(f, pre); err != nil {
			return fmt.Errorf("input %s: %w", f, err)
		}
	}
	o := attr.Options{Progress: progressBar(stderr, *name, *quiet), Additional: extraVals}
	if *target != "" {
		var idx []int
		for _, s := range strings.Split(*target, ",") {
			v, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil {
				return usageError{fmt.Errorf("--target %q: want integers", *target)}
			}
			idx = append(idx, v)
		}
		if len(idx) == 1 {
			o.Target = attr.Class(idx[0])
		} else {
			o.Target = attr.Classes(idx...)
		}
	}
	if len(baselineFiles) > 0 {
		if len(baselineFiles) != len(xs) {
			return usageError{fmt.Errorf("%d --baselines files for %d inputs: give one per input, in order", len(baselineFiles), len(xs))}
		}
		for _, f := range baselineFiles {
			b, err := npy.ReadFile(f)
			if err != nil {
				return fmt.Errorf("--baselines %s: %w", f, err)
			}
			o.Baselines = append(o.Baselines, b)
		}
	} else if *baseline != 0 {
		for range xs {
			o.Baselines = append(o.Baselines, tensor.Scalar(float32(*baseline)))
		}
	}
	if mt.Distribution && len(baselineFiles) == 0 {
		// A distribution of two baselines: zeros and the --baseline value.
		o.Baselines = methods.DefaultDistribution(xs, float32(*baseline))
	}
	meth, err := mt.Build(nt, *layer, p)
	if err != nil {
		return usageError{err}
	}
	r, err := meth.Attribute(ctx, xs, o)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	for i, a := range r.Attributions {
		if a == nil {
			continue
		}
		f := filepath.Join(*out, fmt.Sprintf("attributions_%d.npy", i))
		if err := npy.WriteFile(f, a); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s %v\n", f, a.Shape)
		var files []string
		if *series != "" {
			sf, err := writeSeries(*out, i, a, xs[i], *series)
			if err != nil {
				return err
			}
			files = append(files, sf...)
		} else if *tokensFile == "" || i > 0 {
			if files, err = writePictures(*out, i, a, xs[i], shown[i], pics); err != nil {
				return err
			}
		} else {
			tf, err := writeText(ctx, *out, *tokensFile, nt, xs, a, *name, pics)
			if err != nil {
				return err
			}
			files = append(files, tf...)
		}
		for _, f := range files {
			fmt.Fprintf(stdout, "wrote %s\n", f)
		}
	}
	return nil
}

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
			p.views = append(p.views, viz.ImageView{Method: v, Sign: s, Title: strings.ReplaceAll(v, "_", " ")})
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
// with 1 or 3 channels, or [N, H, W] maps), one figure per example, with
// the heat map and, when the image has the attribution's size (or the map
// is a coarser layer map, then upsampled), the heat map blended over it.
// It returns the files written.
func writePictures(dir string, i int, a, x, shown *tensor.Tensor, p *pictures) ([]string, error) {
	if (a.Rank() != 4 && a.Rank() != 3) || len(p.formats) == 0 {
		return nil, nil
	}
	var files []string
	for e := 0; e < a.Shape[0]; e++ {
		ae, _ := tensor.FromFloat32(a.F[e*a.Len()/a.Shape[0]:(e+1)*a.Len()/a.Shape[0]], a.Shape[1:]...)
		if _, _, _, err := viz.Map2D(ae, false); err != nil {
			return files, nil // not an image: the .npy file is all
		}
		img := shown
		if img == nil {
			img = picture.Of(x, e)
		}
		// A layer's coarser map (Grad-CAM) is drawn upsampled over the
		// image; the .npy file keeps the layer's resolution.
		ae, img, err := picture.Fit(ae, img)
		if err != nil {
			return files, err
		}
		views := p.views
		if views == nil {
			views = []viz.ImageView{{Method: viz.MethodHeatMap, Sign: p.o.Sign, Title: "heat map"}}
			if img != nil {
				views = append(views, viz.ImageView{Method: viz.MethodBlendedHeatMap, Sign: p.o.Sign, Title: "blended heat map"})
			}
		}
		o := p.o
		if o.Width == 0 {
			o.Width = 600 * len(views)
		}
		if a.Shape[0] > 1 {
			o.Title = fmt.Sprintf("%s (example %d)", o.Title, e)
		}
		fig, err := viz.ImageAttrMultiple(ae, img, views, o)
		if err != nil {
			return files, err
		}
		for _, f := range p.formats {
			name := filepath.Join(dir, fmt.Sprintf("attributions_%d_%d.%s", i, e, f))
			if err := fig.WriteFile(name); err != nil {
				return files, err
			}
			files = append(files, name)
		}
	}
	return files, nil
}

// isImageFile says whether a file name is a PNG or JPEG picture's.
func isImageFile(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".png", ".jpg", ".jpeg":
		return true
	}
	return false
}

// readInput reads an input file: a picture, preprocessed (and also
// returned as shown, for drawing), or else a .npy array.
func readInput(path string, pre preprocess.Options) (x, shown *tensor.Tensor, err error) {
	if isImageFile(path) {
		return preprocess.Load(path, pre)
	}
	x, err = npy.ReadFile(path)
	return x, nil, err
}

// imageFlags adds the image preprocessing flags to fs; the function it
// returns reads them once fs is parsed.
func imageFlags(fs *flag.FlagSet) func() (preprocess.Options, error) {
	resize := fs.Int("resize", 0, "image inputs: resize the shorter side to this many pixels")
	crop := fs.Int("crop", 0, "image inputs: crop the center to this size")
	mean := fs.String("mean", "", "image inputs: per-channel means to subtract, e.g. 0.485,0.456,0.406")
	std := fs.String("std", "", "image inputs: per-channel standard deviations, e.g. 0.229,0.224,0.225")
	gray := fs.Bool("gray", false, "image inputs: one gray channel")
	return func() (preprocess.Options, error) {
		pre := preprocess.Options{Resize: *resize, CenterCrop: *crop, Gray: *gray}
		var err error
		if pre.Mean, err = floatList("--mean", *mean); err != nil {
			return pre, err
		}
		pre.Std, err = floatList("--std", *std)
		return pre, err
	}
}

// floatList reads "0.485,0.456,0.406" (empty: nil).
func floatList(flag, s string) ([]float64, error) {
	if s == "" {
		return nil, nil
	}
	var out []float64
	for _, p := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil {
			return nil, usageError{fmt.Errorf("%s %q: want numbers separated by commas", flag, s)}
		}
		out = append(out, v)
	}
	return out, nil
}

func cmdLayers(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("layers", flag.ContinueOnError)
	fs.SetOutput(stderr)
	model := fs.String("model", "", "ONNX model file (\"demo\": the built-in model)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	m, err := loadModel(*model)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%-28s %-20s %-18s %s\n", "module", "op", "shape (batch 1)", "tensor")
	for _, l := range m.Layers() {
		mod := l.Module
		if mod == "" {
			mod = "-"
		}
		fmt.Fprintf(stdout, "%-28s %-20s %-18s %s\n", mod, l.OpType, fmt.Sprint(l.Shape), l.Output)
	}
	return nil
}

func cmdMethods(stdout io.Writer) error {
	for _, n := range methods.Names() {
		m, _ := methods.Lookup(n)
		layer := ""
		if m.Layer {
			layer = " (--layer)"
		}
		fmt.Fprintf(stdout, "%s%s: %s\n", n, layer, m.Doc)
		for _, p := range m.Params {
			fmt.Fprintf(stdout, "    %s (default %q): %s\n", p.Name, p.Default, p.Doc)
		}
	}
	return nil
}
