package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/engine"
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
}

// newExplainFlags adds loupe explain's flags to fs.
func newExplainFlags(fs *flag.FlagSet) *explainFlags {
	f := &explainFlags{}
	fs.StringVar(&f.model, "model", "", "ONNX model file (\"demo\": the built-in model)")
	fs.Var(&f.inputs, "input", "input as a .npy file, batch first (repeat for several inputs, in the model's order)")
	fs.Var(&f.extras, "extra", "name=file.npy: a model input fed but not attributed (additional_forward_args; repeatable)")
	fs.StringVar(&f.method, "method", "IntegratedGradients", "attribution method (see loupe methods)")
	fs.StringVar(&f.target, "target", "", "output explained: an index, one per example separated by commas, an index tuple such as (0,2), or pred (the predicted class)")
	fs.Var(&f.params, "param", "method parameter name=value (repeatable)")
	fs.StringVar(&f.layer, "layer", "", "layer for layer methods: module path (layer4, fc) or tensor name")
	fs.Float64Var(&f.baseline, "baseline", 0, "baseline value for methods that take one")
	fs.Var(&f.baselines, "baselines", "baselines as a .npy file, one per input: a tensor that broadcasts to the input, or for the Shap methods a distribution (rows to draw from)")
	fs.StringVar(&f.out, "out", "loupe-out", "folder for the attributions")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress bar")
	f.image = imageFlags(fs)
	fs.StringVar(&f.sign, "sign", "absolute_value", "pictures: absolute_value, positive, negative or all")
	fs.StringVar(&f.views, "views", "", "pictures: visualizations side by side, from "+strings.Join(viz.ImageMethods(), ", ")+
		" (default heat_map, and blended_heat_map when the input is an image)")
	fs.StringVar(&f.cmap, "cmap", "", "pictures: color map ("+strings.Join(viz.ColormapNames(), ", ")+"; default per sign)")
	fs.BoolVar(&f.colorBar, "colorbar", true, "pictures: draw color bars")
	fs.StringVar(&f.title, "title", "", "pictures: figure title (default: method and target)")
	fs.StringVar(&f.size, "size", "", "pictures: figure size in pixels, WxH (default 600 per view by 600)")
	fs.StringVar(&f.format, "format", "png", "pictures: png, svg, both or none")
	fs.StringVar(&f.series, "series", "", "time-series inputs ([N, T] or [N, C, T]): draw each example as overlay_individual, overlay_combined or colored_graph (SVG)")
	fs.StringVar(&f.tokens, "tokens", "", "text inputs: a file of the examples' tokens, one example a line, tokens separated by spaces; draws the attributions summed per token as HTML and PNG")
	return f
}

// cmdExplain runs one method on the inputs and writes the attributions
// and their pictures.
func cmdExplain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if wantsDetections(args) {
		return cmdExplainDetections(ctx, args, stdout, stderr) // detect.go
	}
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := newExplainFlags(fs)
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	pics, err := f.pictures()
	if err != nil {
		return usageError{err}
	}
	pre, err := f.image()
	if err != nil {
		return err
	}
	req := explain.Request{Method: f.method, Params: f.params, Layer: f.layer, Baseline: float32(f.baseline), Progress: progressBar(stderr, f.method, f.quiet)}
	if req.Target, err = explain.ParseTarget(f.target); err != nil {
		return usageError{err}
	}
	if _, _, err := explain.Resolve(f.method, f.params); errors.Is(err, explain.ErrUnknownMethod) {
		return usageError{fmt.Errorf("%w (see loupe methods)", err)}
	} else if err != nil {
		return usageError{err}
	}
	m, err := loadModel(f.model)
	if err != nil {
		return err
	}
	nt, err := f.net(m, &req)
	if err != nil {
		return err
	}
	xs, shown, err := f.readInputs(nt, pre)
	if err != nil {
		return err
	}
	for _, file := range f.baselines {
		b, err := npy.ReadFile(file)
		if err != nil {
			return fmt.Errorf("--baselines %s: %w", file, err)
		}
		req.Baselines = append(req.Baselines, b)
	}
	res, err := explain.Run(ctx, nt, xs, req)
	if err != nil {
		return asUsage(err)
	}
	return f.write(ctx, stdout, nt, xs, shown, res.Attributions, pics)
}

// pictures reads the picture flags; the title defaults to the method and
// the target.
func (f *explainFlags) pictures() (*pictures, error) {
	p, err := pictureOptions(f.sign, f.views, f.cmap, f.colorBar, f.title, f.size, f.format)
	if err != nil {
		return nil, err
	}
	if p.o.Title == "" {
		p.o.Title = f.method
		if f.target != "" {
			p.o.Title += ", target " + f.target
		}
	}
	return p, nil
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

// readInputs reads the --input files, one per attributed input; shown[i]
// is the picture of an image file, for drawing.
func (f *explainFlags) readInputs(nt *attr.Net, pre preprocess.Options) (xs, shown []*tensor.Tensor, err error) {
	if len(f.inputs) != len(nt.Inputs) {
		return nil, nil, usageError{fmt.Errorf("the model takes %d inputs (%s); give each with --input x.npy", len(nt.Inputs), strings.Join(nt.Inputs, ", "))}
	}
	xs = make([]*tensor.Tensor, len(f.inputs))
	shown = make([]*tensor.Tensor, len(f.inputs))
	for i, file := range f.inputs {
		if xs[i], shown[i], err = readInput(file, pre); err != nil {
			return nil, nil, fmt.Errorf("input %s: %w", file, err)
		}
	}
	return xs, shown, nil
}

// write writes each input's attributions as .npy, then draws them: as
// time series, as text (the first input, with --tokens), or as pictures.
func (f *explainFlags) write(ctx context.Context, stdout io.Writer, nt *attr.Net, xs, shown, attrs []*tensor.Tensor, pics *pictures) error {
	if err := os.MkdirAll(f.out, 0o755); err != nil {
		return err
	}
	for i, a := range attrs {
		if a == nil {
			continue
		}
		file := filepath.Join(f.out, fmt.Sprintf("attributions_%d.npy", i))
		if err := npy.WriteFile(file, a); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s %v\n", file, a.Shape)
		var files []string
		var err error
		switch {
		case f.series != "":
			files, err = writeSeries(f.out, i, a, xs[i], f.series)
		case f.tokens != "" && i == 0:
			files, err = writeText(ctx, f.out, f.tokens, nt, xs, a, f.method, pics)
		default:
			files, err = writePictures(f.out, i, a, xs[i], shown[i], pics)
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
