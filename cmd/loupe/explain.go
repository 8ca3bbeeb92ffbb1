package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/internal/demo"
	"github.com/loupe-ml/loupe/internal/explain"
	"github.com/loupe-ml/loupe/npy"
	"github.com/loupe-ml/loupe/preprocess"
	"github.com/loupe-ml/loupe/tensor"
	"github.com/loupe-ml/loupe/viz"
)

// explainFlags are loupe explain's flags.
type explainFlags struct {
	model, method, target, layer, out string
	inputs, params, extras, baselines multi
	baseline                          float64
	quiet                             bool
	image                             func() (preprocess.Options, error)
	sign, views, cmap, title, size    string
	format, series, tokens            string
	colorBar                          bool
	classes                           string
	top                               int
	memoryBudget                      string
}

// newExplainFlags adds loupe explain's flags to fs.
func newExplainFlags(fs *flag.FlagSet) *explainFlags {
	f := &explainFlags{}
	fs.StringVar(&f.model, "model", "", "ONNX model file (\"demo\": the built-in model)")
	fs.Var(&f.inputs, "input", "input as a .npy file (batch first), a PNG or JPEG picture, or a folder of them; for a model of one input, several --input files (or a folder) are explained as one batch; for a model of several inputs, give one --input per input, in the model's order")
	fs.Var(&f.extras, "extra", "name=file.npy: a model input fed but not attributed (additional_forward_args; repeatable)")
	fs.StringVar(&f.method, "method", "IntegratedGradients", "attribution method (see loupe methods)")
	fs.StringVar(&f.target, "target", "", "output explained: pred (the predicted class: the default for a classifier), an index, one per example separated by commas, or an index tuple such as (0,2)")
	fs.Var(&f.params, "param", "method parameter name=value (repeatable)")
	fs.StringVar(&f.layer, "layer", "", "layer for layer methods: module path (layer4, layer2.0.downsample.0, fc) or tensor name (see loupe layers)")
	fs.Float64Var(&f.baseline, "baseline", 0, "baseline value for methods that take one")
	fs.Var(&f.baselines, "baselines", "baselines as a .npy file, one per input: a tensor that broadcasts to the input, or for the Shap methods a distribution (rows to draw from)")
	fs.StringVar(&f.out, "out", "loupe-out", "folder for the attributions")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress bar")
	f.image = imageFlags(fs)
	fs.StringVar(&f.classes, "classes", "", "text file naming the model's classes, one per line (line 0 is class 0), for the predictions and titles")
	fs.StringVar(&f.memoryBudget, "memory-budget", "", "memory the method may hold at once: bytes, or a number with kB, MB, GB (powers of 1000) or KiB, MiB, GiB (default: a quarter of the machine's memory); methods split their batches to fit and refuse, naming the parameter to change, what cannot")
	fs.IntVar(&f.top, "top", 5, "classes printed per example (0: none)")
	fs.StringVar(&f.sign, "sign", "", "pictures: absolute_value, positive, negative or all (default per method: positive for the CAM family, absolute_value for gradients, all for attributions that add up)")
	fs.StringVar(&f.views, "views", "", "pictures: visualizations side by side, from "+strings.Join(viz.ImageMethods(), ", ")+
		" (default heat_map, and blended_heat_map when the input is an image)")
	fs.StringVar(&f.cmap, "cmap", "", "pictures: color map ("+strings.Join(viz.ColormapNames(), ", ")+"; default per sign)")
	fs.BoolVar(&f.colorBar, "colorbar", true, "pictures: draw color bars")
	fs.StringVar(&f.title, "title", "", "pictures: figure title (default: method, target and layer)")
	fs.StringVar(&f.size, "size", "", "pictures: figure size in pixels, WxH (default 600 per view by 600)")
	fs.StringVar(&f.format, "format", "png", "pictures: png, svg, both or none")
	fs.StringVar(&f.series, "series", "", "time-series inputs ([N, T] or [N, C, T]): draw each example as overlay_individual, overlay_combined or colored_graph (SVG)")
	fs.StringVar(&f.tokens, "tokens", "", "text inputs: a file of the examples' tokens, one example a line, tokens separated by spaces; draws the attributions summed per token as HTML and PNG")
	return f
}

// batchInputs are the attributed inputs as read: the tensors, the
// pictures to draw on (image files; nil else) and a name per example of
// the first input (nil when its examples are not files).
type batchInputs struct {
	xs, shown []*tensor.Tensor
	names     []string
	images    bool // some input came from a picture
}

// cmdExplain runs one method on the inputs and writes the attributions
// and their pictures.
func cmdExplain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if isLLM(args) {
		return cmdExplainLLM(ctx, args, stdout, stderr)
	}
	if wantsDetections(args) {
		return cmdExplainDetections(ctx, args, stdout, stderr) // detect.go
	}
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := newExplainFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q (flags come as --name value; inputs as --input file)", fs.Arg(0))}
	}
	pre, err := f.image()
	if err != nil {
		return usageError{err}
	}
	req := explain.Request{Method: f.method, Params: f.params, Layer: f.layer, Baseline: float32(f.baseline), Progress: progressBar(stderr, f.method, f.quiet)}
	if req.MemoryBudget, err = parseBytes(f.memoryBudget); err != nil {
		return usageError{fmt.Errorf("--memory-budget: %w", err)}
	}
	if req.Target, err = explain.ParseTarget(f.target); err != nil {
		return usageError{err}
	}
	_, vals, err := explain.Resolve(f.method, f.params)
	if errors.Is(err, explain.ErrUnknownMethod) {
		return usageError{fmt.Errorf("%w; see loupe methods", err)}
	} else if err != nil {
		return usageError{err}
	}
	if f.sign == "" {
		f.sign = explain.DefaultSign(f.method, vals)
		// Masks and alpha scaling show magnitudes: the positive part
		// when the method's own sign is both.
		if f.sign == "all" && (strings.Contains(f.views, viz.MethodMaskedImage) || strings.Contains(f.views, viz.MethodAlphaScaling)) {
			f.sign = "positive"
		}
	}
	pics, err := f.pictures()
	if err != nil {
		return usageError{err}
	}
	if f.layer != "" && !explain.TakesLayer(f.method) {
		fmt.Fprintf(stderr, "warning: %s takes no layer: --layer %s is ignored (layer methods: LayerGradCam, GradCAM, LayerIntegratedGradients, ...; see loupe methods)\n", f.method, f.layer)
	}
	m, err := loadModel(f.model)
	if err != nil {
		return err
	}
	names, err := f.classNames()
	if err != nil {
		return err
	}
	nt, err := f.net(m, &req)
	if err != nil {
		return err
	}
	in, err := f.readBatch(nt, pre)
	if err != nil {
		return err
	}
	if err := explain.CheckInputs(nt, in.xs); err != nil {
		return usageError{withResizeHint(err, in.images)}
	}
	for _, file := range f.baselines {
		b, err := npy.ReadFile(file)
		if err != nil {
			return fmt.Errorf("--baselines %s: %w", file, err)
		}
		req.Baselines = append(req.Baselines, b)
	}
	// The prediction: printed, and the default target of a classifier.
	preds, err := f.predict(ctx, stdout, nt, in, req.Additional, names)
	if err != nil {
		return err
	}
	if preds != nil && (req.Target.IsZero() || req.Target.IsPredicted()) {
		idx := make([]string, len(preds))
		for e, p := range preds {
			idx[e] = strconv.Itoa(p[0].Index)
		}
		req.Target, _ = explain.ParseTarget(strings.Join(idx, ","))
	}
	res, err := explain.Run(ctx, nt, in.xs, req)
	if err != nil {
		return asUsage(err)
	}
	pics.classNames = names
	return f.write(ctx, stdout, stderr, nt, in, res, pics)
}

// classNames reads --classes; the built-in model knows its own.
func (f *explainFlags) classNames() ([]string, error) {
	if f.classes != "" {
		names, err := explain.ReadClassNames(f.classes)
		if err != nil {
			return nil, fmt.Errorf("--classes: %w", err)
		}
		return names, nil
	}
	if f.model == "demo" {
		return demo.Classes, nil
	}
	return nil, nil
}

// predict runs the model once on the batch and prints each example's
// most probable classes. It returns nil, printing nothing, when the
// model's output is not one row of class scores per example (a
// regression, a sequence); an error only when the model fails.
func (f *explainFlags) predict(ctx context.Context, stdout io.Writer, nt *attr.Net, in *batchInputs, additional []*tensor.Tensor, names []string) ([][]explain.Prediction, error) {
	y, err := nt.Eval(ctx, append(append([]*tensor.Tensor(nil), in.xs...), additional...))
	if err != nil {
		return nil, fmt.Errorf("the model on the inputs: %w", err)
	}
	if y.Rank() != 2 || y.Shape[1] < 2 {
		return nil, nil
	}
	preds, err := explain.TopK(y, max(f.top, 1), names)
	if err != nil {
		return nil, nil
	}
	if f.top <= 0 {
		return preds, nil
	}
	w := 0
	for e := range preds {
		w = max(w, len(exampleName(in, e)))
	}
	for e, p := range preds {
		parts := make([]string, len(p))
		for k, c := range p {
			parts[k] = fmt.Sprintf("%s %.3f", c.Label(), c.Prob)
		}
		fmt.Fprintf(stdout, "%-*s  predicted %s (%.1f%%)", w, exampleName(in, e), p[0].Label(), 100*p[0].Prob)
		if len(p) > 1 {
			fmt.Fprintf(stdout, "; top %d: %s", len(p), strings.Join(parts, ", "))
		}
		fmt.Fprintln(stdout)
	}
	return preds, nil
}

// exampleName names example e of the batch: its file, or "example e".
func exampleName(in *batchInputs, e int) string {
	if e < len(in.names) && in.names[e] != "" {
		return in.names[e]
	}
	return fmt.Sprintf("example %d", e)
}

// withResizeHint adds to a shape error on pictures how to resize them.
func withResizeHint(err error, images bool) error {
	var se *explain.ShapeError
	if !errors.As(err, &se) || len(se.Want) != 4 {
		return err
	}
	h, w := se.Want[2], se.Want[3]
	if h <= 0 || w <= 0 {
		return err
	}
	if !images {
		return fmt.Errorf("%w (give arrays of that shape, or pictures with --resize/--crop)", err)
	}
	hint := fmt.Sprintf("resize the pictures: --resize %d --crop %d", h*8/7, h)
	if h != w {
		hint = fmt.Sprintf("the model takes %dx%d pictures; resize them beforehand (--resize and --crop make squares)", h, w)
	} else if h == 224 {
		hint += " (with ImageNet's mean and std: --preset imagenet)"
	}
	return fmt.Errorf("%w; %s", err, hint)
}

// pictures reads the picture flags.
func (f *explainFlags) pictures() (*pictures, error) {
	return pictureOptions(f.sign, f.views, f.cmap, f.colorBar, f.title, f.size, f.format)
}

// targetLabel names example e's target: "target 281 (tabby)".
func targetLabel(res *explain.Result, e int, names []string) string {
	if e >= len(res.Targets) || res.Targets[e] == nil {
		return ""
	}
	t := res.Targets[e]
	if len(t) == 1 {
		s := fmt.Sprintf("target %d", t[0])
		if t[0] < len(names) && names[t[0]] != "" {
			s += " (" + names[t[0]] + ")"
		}
		return s
	}
	parts := make([]string, len(t))
	for i, v := range t {
		parts[i] = strconv.Itoa(v)
	}
	return "target (" + strings.Join(parts, ",") + ")"
}

// layerLabel names the layer a layer method explained: the one given, or
// the last convolution it defaults to.
func (f *explainFlags) layerLabel(m *engine.Model) string {
	if !explain.TakesLayer(f.method) {
		return ""
	}
	if f.layer != "" {
		return "layer " + f.layer
	}
	if l, err := m.LastConv(); err == nil {
		name := l.Module
		if name == "" {
			name = l.Output
		}
		return "layer " + name
	}
	return ""
}

// net prepares the model with the --extra inputs fed, not attributed,
// and sets their values in the request.
func (f *explainFlags) net(m *engine.Model, req *explain.Request) (*attr.Net, error) {
	var names []string
	for _, kv := range f.extras {
		name, file, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, usageError{fmt.Errorf("--extra %q: want name=file.npy", kv)}
		}
		t, err := npy.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--extra %s: %w", name, err)
		}
		names = append(names, name)
		req.Additional = append(req.Additional, t)
	}
	nt, err := attr.NewNet(m, names...)
	if err != nil {
		return nil, usageError{err}
	}
	return nt, nil
}

// expandInputs replaces each folder among files by its pictures and .npy
// files, in name order.
func expandInputs(files []string) (out []string, folder bool, err error) {
	for _, file := range files {
		st, err := os.Stat(file)
		if err != nil || !st.IsDir() {
			out = append(out, file)
			continue
		}
		folder = true
		entries, err := os.ReadDir(file)
		if err != nil {
			return nil, false, fmt.Errorf("--input %s: %w", file, err)
		}
		var found []string
		for _, e := range entries {
			if !e.IsDir() && preprocess.IsInput(e.Name()) {
				found = append(found, filepath.Join(file, e.Name()))
			}
		}
		if len(found) == 0 {
			return nil, false, usageError{fmt.Errorf("--input %s: a folder without .png, .jpg or .npy files", file)}
		}
		sort.Strings(found)
		out = append(out, found...)
	}
	return out, folder, nil
}

// readBatch reads the --input files. For a model of several attributed
// inputs, one file per input, in order. For a model of one, every file
// (folders expanded) is part of one batch, its examples named after their
// files.
func (f *explainFlags) readBatch(nt *attr.Net, pre preprocess.Options) (*batchInputs, error) {
	files, folder, err := expandInputs(f.inputs)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, usageError{fmt.Errorf("no input: give --input x.npy, a picture or a folder (the model takes %s)", strings.Join(nt.Inputs, ", "))}
	}
	in := &batchInputs{}
	if len(nt.Inputs) != 1 {
		if folder || len(files) != len(nt.Inputs) {
			return nil, usageError{fmt.Errorf("the model takes %d inputs (%s); give one --input per input, in that order (%d given)", len(nt.Inputs), strings.Join(nt.Inputs, ", "), len(files))}
		}
		for _, file := range files {
			x, shown, err := readInput(file, pre)
			if err != nil {
				return nil, fmt.Errorf("input %s: %w", file, err)
			}
			in.xs, in.shown = append(in.xs, x), append(in.shown, shown)
			in.images = in.images || shown != nil
		}
		return in, nil
	}
	var xs, shown []*tensor.Tensor
	for _, file := range files {
		x, s, err := readInput(file, pre)
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", file, err)
		}
		if x.Rank() == 0 {
			return nil, usageError{fmt.Errorf("input %s: a scalar; want a batch [N, ...]", file)}
		}
		stem := strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
		for e := 0; e < x.Shape[0]; e++ {
			name := stem
			if x.Shape[0] > 1 {
				name = fmt.Sprintf("%s_%d", stem, e)
			}
			in.names = append(in.names, name)
		}
		if s != nil {
			in.images = true
			s4, _ := s.Reshape(append([]int{1}, s.Shape...)...)
			shown = append(shown, s4)
		}
		xs = append(xs, x)
	}
	if len(shown) > 0 && len(shown) != len(xs) {
		shown = nil // pictures mixed with arrays: draw on none
	}
	x, err := tensor.Batch(xs...)
	if err != nil {
		return nil, usageError{fmt.Errorf("the inputs do not make one batch: %w%s", batchFault(files, xs), sizeHint(in.images))}
	}
	in.xs = []*tensor.Tensor{x}
	in.shown = []*tensor.Tensor{nil}
	if shown != nil {
		if in.shown[0], err = tensor.Batch(shown...); err != nil {
			in.shown[0] = nil
		}
	}
	if len(files) == 1 && x.Shape[0] > 1 && !isImageFile(files[0]) {
		in.names = nil // one array of several examples: number them
	}
	in.names = uniqueNames(in.names)
	return in, nil
}

// batchFault names the first file whose shape differs from the first's.
func batchFault(files []string, xs []*tensor.Tensor) error {
	for i := 1; i < len(xs); i++ {
		if xs[i].Rank() != xs[0].Rank() || !tensor.SameShape(xs[i].Shape[1:], xs[0].Shape[1:]) {
			return fmt.Errorf("%s is %v but %s is %v", files[i], xs[i].Shape, files[0], xs[0].Shape)
		}
	}
	return errors.New("mixed types")
}

// sizeHint suggests making pictures one size.
func sizeHint(images bool) string {
	if !images {
		return ""
	}
	return "; give the pictures one size with --resize N --crop N (or --preset imagenet)"
}

// uniqueNames makes repeated names distinct by numbering the repeats.
func uniqueNames(names []string) []string {
	seen := map[string]int{}
	for _, n := range names {
		seen[n]++
	}
	count := map[string]int{}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = n
		if seen[n] > 1 {
			out[i] = fmt.Sprintf("%s_%d", n, count[n])
			count[n]++
		}
	}
	return out
}

// write writes each input's attributions as .npy, then draws them: as
// time series, as text (the first input, with --tokens), or as pictures,
// one figure per example, named after its file when it has one. It warns
// about maps with nothing to draw.
func (f *explainFlags) write(ctx context.Context, stdout, stderr io.Writer, nt *attr.Net, in *batchInputs, res *explain.Result, pics *pictures) error {
	if err := os.MkdirAll(f.out, 0o755); err != nil {
		return err
	}
	m := nt.Model
	names := pics.classNames
	for i, a := range res.Attributions {
		if a == nil {
			continue
		}
		file := filepath.Join(f.out, fmt.Sprintf("attributions_%d.npy", i))
		if err := npy.WriteFile(file, a); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s %v\n", file, a.Shape)
		warnEmpty(stderr, a, in, i, pics.o.Sign)
		var files []string
		var err error
		switch {
		case f.series != "":
			files, err = writeSeries(f.out, i, a, in.xs[i], f.series)
		case f.tokens != "" && i == 0:
			files, err = writeText(ctx, f.out, f.tokens, nt, in.xs, a, f.method, pics)
		default:
			p := *pics
			p.title = func(e int) string {
				if f.title != "" {
					return f.title
				}
				parts := []string{f.method}
				if l := f.layerLabel(m); l != "" {
					parts = append(parts, l)
				}
				if t := targetLabel(res, e, names); t != "" {
					parts = append(parts, t)
				}
				if a.Shape[0] > 1 || len(in.names) > 0 {
					parts = append(parts, exampleName(in, e))
				}
				return strings.Join(parts, ", ")
			}
			if i == 0 && len(in.names) > 0 {
				p.fileName = func(e int) string { return "attributions_" + in.names[e] }
			}
			files, err = writePictures(f.out, i, a, in.xs[i], in.shown[i], &p)
		}
		if err != nil {
			return err
		}
		for _, file := range files {
			fmt.Fprintf(stdout, "wrote %s\n", file)
		}
	}
	return nil
}

// warnEmpty warns about examples whose map is all zero, or has nothing
// of the sign drawn (a Grad-CAM map that is all negative, drawn
// positive).
func warnEmpty(stderr io.Writer, a *tensor.Tensor, in *batchInputs, i int, s viz.Sign) {
	if a.DType != tensor.Float32 || a.Rank() == 0 || a.Shape[0] == 0 {
		return
	}
	n := a.Len() / a.Shape[0]
	for e := 0; e < a.Shape[0]; e++ {
		row := a.F[e*n : (e+1)*n]
		v := make([]float64, len(row))
		sum, nonzero := 0.0, false
		for k, x := range row {
			v[k] = float64(x)
			sum += v[k]
			nonzero = nonzero || x != 0
		}
		who := fmt.Sprintf("input %d, %s", i, exampleName(in, e))
		switch {
		case !nonzero:
			fmt.Fprintf(stderr, "warning: %s: the attributions are all zero (nothing in the input moves the target here: try another method, target or layer)\n", who)
		case viz.IsEmpty(viz.Normalize(v, s, 2)):
			fmt.Fprintf(stderr, "warning: %s: no %s attribution to draw (the map sums to %.3g); --sign all shows both signs\n", who, signWord(s), sum)
		}
	}
}

// signWord is how warnings speak of a sign.
func signWord(s viz.Sign) string {
	switch s {
	case viz.Positive:
		return "positive"
	case viz.Negative:
		return "negative"
	}
	return "significant"
}

// parseBytes reads a size: "" (0, the default), a number of bytes, or a
// number with a unit (kB, MB, GB, TB: powers of 1000; KiB, MiB, GiB, TiB:
// powers of 1024; case-insensitive).
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	num := strings.TrimRightFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' && r != ' ' })
	unit := strings.ToLower(strings.TrimSpace(s[len(num):]))
	mult := map[string]float64{"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}[unit]
	v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || mult == 0 || v < 0 || v*mult >= math.MaxInt64 {
		return 0, fmt.Errorf("%q: want a number of bytes, optionally with kB, MB, GB, KiB, MiB or GiB", s)
	}
	return int64(v * mult), nil
}
