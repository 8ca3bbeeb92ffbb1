package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/internal/explain"
	"github.com/loupe-ml/loupe/internal/methods"
	"github.com/loupe-ml/loupe/metrics"
	"github.com/loupe-ml/loupe/npy"
	"github.com/loupe-ml/loupe/preprocess"
	"github.com/loupe-ml/loupe/tensor"
)

// Config is one batch job: what every worker needs to explain its share
// of the examples. It travels to the workers inside the pipeline (JSON),
// so it holds only names and numbers; paths must name the same files on
// every worker (a shared file system on a cluster).
type Config struct {
	// Model is the ONNX file ("demo": the built-in model).
	Model string
	// ModelSHA256 is the model's hash, for the manifest (ModelSHA256).
	ModelSHA256 string
	// Data is the folder of examples; Out the folder of results.
	Data, Out string
	// Method, Params, Layer, Target and Baseline are loupe explain's
	// --method, --param, --layer, --target and --baseline.
	Method string
	Params []string
	Layer  string
	Target string
	// Baseline is a constant baseline (0: the method's own).
	Baseline float64
	// Pre is the preprocessing of pictures (loupe explain's image flags).
	Pre preprocess.Options
	// Batch is how many files are explained in one call of the method,
	// for methods whose attributions of an example do not depend on the
	// others (Batchable); 0 means DefaultBatch. Others run file by file.
	Batch int
	// Metrics names the metrics computed for each example
	// (MetricNames).
	Metrics []string
	// Top is how many classes each prediction lists (0: 5).
	Top int
}

// DefaultBatch is how many files a batchable method explains per call
// unless Config.Batch says otherwise: one, so that every file's
// attributions are exactly loupe explain's for the file alone. Larger
// batches are faster for cheap methods, but the model's sums then run in
// another order and the attributions differ by float32 rounding (on
// resnet18 with Saliency, 8 files a call: by up to 4.4e-6 of the largest
// attribution).
const DefaultBatch = 1

// batchable are the methods whose attributions of one example are the
// same whatever other examples share its call (no random draws, nothing
// across the batch) and that cost a few model rows per example, so that
// explaining several files in one call is what loupe explain gives for
// each alone. The others (path methods, whose calls already hold
// n_steps rows per example; perturbation methods; anything random or
// reading the whole batch, such as FeaturePermutation) run file by file.
var batchable = map[string]bool{
	"Saliency": true, "InputXGradient": true, "GuidedBackprop": true, "Deconvolution": true,
	"DeepLift": true, "LRP": true, "GuidedGradCam": true, "LayerGradCam": true,
	"GradCAM": true, "GradCAMPlusPlus": true, "GradCAMElementWise": true, "HiResCAM": true,
	"LayerCAM": true, "XGradCAM": true, "LayerActivation": true, "LayerGradientXActivation": true,
	"LayerDeepLift": true, "NeuronGradient": true, "NeuronGuidedBackprop": true,
	"NeuronDeconvolution": true, "NeuronDeepLift": true,
}

// Batchable says whether a method explains several files in one call
// (see Config.Batch).
func Batchable(method string) bool { return batchable[method] }

// filesPerCall is the number of files explained per call of the method.
func (c Config) filesPerCall() int {
	if !batchable[c.Method] {
		return 1
	}
	if c.Batch > 0 {
		return c.Batch
	}
	return DefaultBatch
}

// MetricNames returns the metrics --metrics takes.
func MetricNames() []string { return []string{"infidelity", "sensitivity_max"} }

// Metric settings, recorded in the manifest next to the values.
const (
	infidelityNoise   = 0.01 // standard deviation of infidelity's Gaussian perturbations
	sensitivityRadius = 0.02 // radius of sensitivity_max's uniform perturbations (Captum's default)
	metricSamples     = 10   // perturbations per example
)

// Check reads the configuration as a request: the method and its
// parameters, the target (one for every example: none, an index, an
// index tuple or pred) and the metrics. Its errors are usage errors.
func (c Config) Check() error {
	if _, _, err := explain.Resolve(c.Method, c.Params); err != nil {
		if errors.Is(err, explain.ErrUnknownMethod) {
			return fmt.Errorf("%w (see loupe methods)", err)
		}
		return err
	}
	t, err := explain.ParseTarget(c.Target)
	if err != nil {
		return err
	}
	if s := t.String(); strings.Contains(s, ",") && !strings.HasPrefix(s, "(") || strings.Contains(s, "),(") {
		return fmt.Errorf("--target %q: a batch job takes one target for every example (an index, an index tuple or pred), not one per example", c.Target)
	}
	for _, m := range c.Metrics {
		if !slices.Contains(MetricNames(), m) {
			return fmt.Errorf("--metrics: unknown metric %q; want %s", m, strings.Join(MetricNames(), ", "))
		}
	}
	if c.Batch < 0 {
		return fmt.Errorf("--batch %d: want a positive number of files per call", c.Batch)
	}
	return nil
}

// Prediction is a model's answer for one example: its top classes, most
// probable first, and their softmax probabilities.
type Prediction struct {
	Classes       []int     `json:"classes"`
	Probabilities []float64 `json:"probabilities"`
}

// Record is one line of OUT/manifest.jsonl: one input file. A file holds
// a batch (rows, usually one), so the per-example fields are lists with
// one entry per row.
type Record struct {
	// Input is the file's name in the data folder.
	Input string `json:"input"`
	// Output is the attributions' file in OUT (empty on failure), and
	// Shape its shape.
	Output string `json:"output,omitempty"`
	Shape  []int  `json:"shape,omitempty"`
	// Predictions holds the model's prediction for each row.
	Predictions []Prediction `json:"predictions,omitempty"`
	// Targets is the output index explained for each row (the
	// predicted class resolved), absent without a target.
	Targets [][]int `json:"targets,omitempty"`
	// Method, Params (the effective parameters: defaults and --param),
	// Layer and ModelSHA256 say how the attributions were made.
	Method      string            `json:"method"`
	Params      map[string]string `json:"params"`
	Layer       string            `json:"layer,omitempty"`
	ModelSHA256 string            `json:"model_sha256"`
	// Target is the target as asked (--target), Baseline the constant
	// baseline and Preprocess the preprocessing of pictures: with the
	// model, method, layer and parameters, what a later run over the same
	// OUT must ask for to count the file as done.
	Target     string              `json:"target,omitempty"`
	Baseline   float64             `json:"baseline,omitempty"`
	Preprocess *preprocess.Options `json:"preprocess,omitempty"`
	// Delta is the convergence delta of each row, for the methods that
	// have one.
	Delta []float64 `json:"delta,omitempty"`
	// Metrics holds each asked metric's value per row, and
	// MetricSettings how they were computed.
	Metrics        map[string][]float64 `json:"metrics,omitempty"`
	MetricSettings map[string]string    `json:"metric_settings,omitempty"`
	// Error says why the file could not be explained (then only Input,
	// Method, Params and ModelSHA256 are set).
	Error string `json:"error,omitempty"`
	// Seconds is the file's share of the time of its call.
	Seconds float64 `json:"seconds"`

	attrs *tensor.Tensor // the attributions, until saved
	err   error          // the error behind Error
}

// errRead marks the errors of files that cannot be read.
var errRead = errors.New("reading")

// Worker explains files: the model loaded once, then any number of
// Explain calls. It is what each Beam worker runs, and what a plain
// loop runs without Beam.
type Worker struct {
	cfg  Config
	nt   *attr.Net
	spec methods.Spec
	vals methods.Values
}

// NewWorker loads the model of a configuration.
func NewWorker(cfg Config) (*Worker, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	m, err := LoadModel(cfg.Model)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", cfg.Model, err)
	}
	nt, err := attr.NewNet(m)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", cfg.Model, err)
	}
	if len(nt.Inputs) != 1 {
		return nil, fmt.Errorf("model %s takes %d inputs (%s); loupe batch explains models of one input", cfg.Model, len(nt.Inputs), strings.Join(nt.Inputs, ", "))
	}
	spec, vals, err := explain.Resolve(cfg.Method, cfg.Params)
	if err != nil {
		return nil, err
	}
	return &Worker{cfg: cfg, nt: nt, spec: spec, vals: vals}, nil
}

// Explain explains the named files of the data folder, several per call
// of the method when it is batchable, and writes each file's
// attributions (OUT/<stem>.npy) and manifest part. It returns one record
// per file; a file that fails gets a record with its error. Only a
// cancelled ctx stops it early (with ctx's error).
func (w *Worker) Explain(ctx context.Context, names []string) ([]Record, error) {
	var out []Record
	var group []string
	var xs []*tensor.Tensor
	flush := func() error {
		if len(group) == 0 {
			return nil
		}
		recs := w.explainGroup(ctx, group, xs)
		if err := ctx.Err(); err != nil {
			return err // not the files' fault: nothing recorded, a new run redoes them
		}
		for i := range recs {
			if err := w.save(&recs[i]); err != nil {
				return err
			}
		}
		out = append(out, recs...)
		group, xs = group[:0], xs[:0]
		return ctx.Err()
	}
	per := w.cfg.filesPerCall()
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		x, err := ReadInput(filepath.Join(w.cfg.Data, name), w.cfg.Pre)
		if err != nil {
			rec := w.failed(name, fmt.Errorf("%w %s: %w", errRead, name, err), 0)
			if err := w.save(&rec); err != nil {
				return out, err
			}
			out = append(out, rec)
			continue
		}
		if len(xs) > 0 && (len(xs) >= per || !stackable(xs[0], x)) {
			if err := flush(); err != nil {
				return out, err
			}
		}
		group, xs = append(group, name), append(xs, x)
	}
	return out, flush()
}

// stackable says whether two inputs can share a call: float arrays with
// a batch dimension and the same shape after it.
func stackable(a, b *tensor.Tensor) bool {
	return a.DType == tensor.Float32 && b.DType == tensor.Float32 && a.Rank() > 0 && b.Rank() > 0 &&
		slices.Equal(a.Shape[1:], b.Shape[1:])
}

// explainGroup explains files that share a call; when the call fails
// for several files, each is explained alone, so that the error lands on
// the file at fault.
func (w *Worker) explainGroup(ctx context.Context, names []string, xs []*tensor.Tensor) []Record {
	start := time.Now()
	recs, err := w.call(ctx, names, xs)
	if err == nil {
		secs := time.Since(start).Seconds() / float64(len(names))
		for i := range recs {
			recs[i].Seconds = secs
		}
		return recs
	}
	if len(names) == 1 {
		return []Record{w.failed(names[0], err, time.Since(start).Seconds())}
	}
	var out []Record
	for i := range names {
		out = append(out, w.explainGroup(ctx, names[i:i+1], xs[i:i+1])...)
	}
	return out
}

// failed is the record of a file that could not be explained.
func (w *Worker) failed(name string, err error, secs float64) Record {
	return Record{Input: name, Method: w.cfg.Method, Params: w.vals, Layer: w.cfg.Layer, ModelSHA256: w.cfg.ModelSHA256,
		Target: w.cfg.Target, Baseline: w.cfg.Baseline, Preprocess: preOf(w.cfg), Error: err.Error(), Seconds: secs, err: err}
}

// call runs the method once on the files' rows stacked, and splits the
// answer back into one record per file (attributions not yet written).
func (w *Worker) call(ctx context.Context, names []string, xs []*tensor.Tensor) ([]Record, error) {
	x := xs[0]
	if len(xs) > 1 {
		x = stackRows(xs)
	}
	n := x.Shape[0]
	y, err := w.nt.Eval(ctx, []*tensor.Tensor{x})
	if err != nil {
		return nil, err
	}
	preds := predictions(y, w.top())
	target, err := explain.ParseTarget(w.cfg.Target)
	if err != nil {
		return nil, err
	}
	if target.IsPredicted() && preds != nil {
		// The predicted classes, as explain.Run would find them with
		// one more model call.
		top := make([]string, n)
		for r, p := range preds {
			top[r] = strconv.Itoa(p.Classes[0])
		}
		if target, err = explain.ParseTarget(strings.Join(top, ",")); err != nil {
			return nil, err
		}
	}
	req := explain.Request{Method: w.cfg.Method, Params: w.cfg.Params, Layer: w.cfg.Layer, Target: target, Baseline: float32(w.cfg.Baseline), Delta: true}
	res, err := explain.Run(ctx, w.nt, []*tensor.Tensor{x}, req)
	if err != nil {
		return nil, err
	}
	a := res.Attributions[0]
	if a == nil || a.Rank() == 0 || a.Shape[0] != n {
		return nil, fmt.Errorf("%s gave no attributions of the input's %d rows", w.cfg.Method, n)
	}
	mets, settings, err := w.metrics(ctx, x, a, res)
	if err != nil {
		return nil, err
	}
	recs := make([]Record, len(names))
	r0 := 0
	for i, name := range names {
		r1 := r0 + xs[i].Shape[0]
		rec := Record{Input: name, Method: w.cfg.Method, Params: res.Params, Layer: w.cfg.Layer, ModelSHA256: w.cfg.ModelSHA256,
			Target: w.cfg.Target, Baseline: w.cfg.Baseline, Preprocess: preOf(w.cfg), MetricSettings: settings}
		rec.attrs = rowsOf(a, r0, r1)
		rec.Output, rec.Shape = Stem(name)+".npy", rec.attrs.Shape
		if preds != nil {
			rec.Predictions = preds[r0:r1]
		}
		if res.Targets != nil {
			rec.Targets = res.Targets[r0:r1]
		}
		if res.Delta != nil && res.Delta.Len() == n {
			rec.Delta = floats(res.Delta.F[r0:r1])
		}
		for name, v := range mets {
			if rec.Metrics == nil {
				rec.Metrics = map[string][]float64{}
			}
			rec.Metrics[name] = floats(v.F[r0:r1])
		}
		recs[i] = rec
		r0 = r1
	}
	return recs, nil
}

// preOf is a configuration's preprocessing of pictures, nil for none.
func preOf(c Config) *preprocess.Options {
	if reflect.DeepEqual(c.Pre, preprocess.Options{}) {
		return nil
	}
	p := c.Pre
	return &p
}

// top is how many classes a prediction lists.
func (w *Worker) top() int {
	if w.cfg.Top > 0 {
		return w.cfg.Top
	}
	return 5
}

// metrics computes the asked metrics of the attributions a of x, one
// value per row.
func (w *Worker) metrics(ctx context.Context, x, a *tensor.Tensor, res *explain.Result) (map[string]*tensor.Tensor, map[string]string, error) {
	if len(w.cfg.Metrics) == 0 {
		return nil, nil, nil
	}
	o := attr.Options{Baselines: w.baselines(x)}
	if res.Targets != nil {
		o.Target = attr.Indices(res.Targets...)
	}
	mo := metrics.Options{NPerturbSamples: metricSamples}
	out := map[string]*tensor.Tensor{}
	settings := map[string]string{}
	for _, name := range w.cfg.Metrics {
		var v *tensor.Tensor
		var err error
		switch name {
		case "infidelity":
			v, err = metrics.Infidelity(ctx, w.nt, metrics.GaussianNoise(infidelityNoise), []*tensor.Tensor{x}, []*tensor.Tensor{a}, o, false, mo)
			settings[name] = fmt.Sprintf("gaussian noise stdev %g, %d samples, seed 0", infidelityNoise, metricSamples)
		case "sensitivity_max":
			var m attr.Method
			if m, err = w.spec.Build(w.nt, w.cfg.Layer, w.vals); err == nil {
				v, err = metrics.SensitivityMax(ctx, m, metrics.UniformBall(sensitivityRadius), []*tensor.Tensor{x}, o, mo)
			}
			settings[name] = fmt.Sprintf("uniform ball radius %g, %d samples, seed 0", sensitivityRadius, metricSamples)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("metric %s: %w", name, err)
		}
		out[name] = v
	}
	return out, settings, nil
}

// baselines are the baselines explain.Run gives the method (see
// explain.Request.Baseline), for the metrics.
func (w *Worker) baselines(x *tensor.Tensor) []*tensor.Tensor {
	b := float32(w.cfg.Baseline)
	switch {
	case w.spec.Distribution:
		return methods.DefaultDistribution([]*tensor.Tensor{x}, b)
	case b != 0:
		return []*tensor.Tensor{tensor.Scalar(b)}
	}
	return nil
}

// save writes a record's attributions (OUT/<stem>.npy) and then its
// manifest part; each file appears whole or not at all.
func (w *Worker) save(rec *Record) error {
	if rec.attrs != nil {
		if err := writeAtomic(filepath.Join(w.cfg.Out, rec.Output), func(f *os.File) error { return npy.Write(f, rec.attrs) }); err != nil {
			return err
		}
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return writeAtomic(partPath(w.cfg.Out, rec.Input), func(f *os.File) error {
		_, err := f.Write(append(b, '\n'))
		return err
	})
}

// writeAtomic writes a file through a temporary file renamed into place.
func writeAtomic(path string, write func(*os.File) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	if err = write(f); err == nil {
		err = f.Close()
	} else {
		f.Close()
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// predictions returns each row's top k classes and probabilities, or nil
// for an output that is not scores [N, classes].
func predictions(y *tensor.Tensor, k int) []Prediction {
	if y == nil || y.Rank() != 2 || y.DType != tensor.Float32 || y.Shape[1] == 0 {
		return nil
	}
	n, c := y.Shape[0], y.Shape[1]
	out := make([]Prediction, n)
	for r := range out {
		z := y.F[r*c : (r+1)*c]
		mx := slices.Max(z)
		p := make([]float64, c)
		sum := 0.0
		for i, v := range z {
			p[i] = math.Exp(float64(v - mx))
			sum += p[i]
		}
		idx := make([]int, c)
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return z[idx[a]] > z[idx[b]] })
		idx = idx[:min(k, c)]
		probs := make([]float64, len(idx))
		for i, j := range idx {
			probs[i] = p[j] / sum
		}
		out[r] = Prediction{Classes: idx, Probabilities: probs}
	}
	return out
}

// stackRows concatenates float arrays of the same shape after their
// first dimension along it.
func stackRows(xs []*tensor.Tensor) *tensor.Tensor {
	n := 0
	for _, x := range xs {
		n += x.Shape[0]
	}
	out := tensor.New(append([]int{n}, xs[0].Shape[1:]...)...)
	off := 0
	for _, x := range xs {
		off += copy(out.F[off:], x.F)
	}
	return out
}

// rowsOf copies rows [r0, r1) of a float array.
func rowsOf(a *tensor.Tensor, r0, r1 int) *tensor.Tensor {
	if r0 == 0 && r1 == a.Shape[0] {
		return a
	}
	per := a.Len() / a.Shape[0]
	out := tensor.New(append([]int{r1 - r0}, a.Shape[1:]...)...)
	copy(out.F, a.F[r0*per:r1*per])
	return out
}

// floats converts float32 values for JSON.
func floats(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}
