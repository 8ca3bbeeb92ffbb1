// Package methods is the table of attribution methods that loupe's command
// line and Insights server run by name: Captum's names, their parameters as
// text with defaults, and how to build each on a network.
package methods

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/npy"
	"github.com/loupe-ml/loupe/tensor"
)

// Param describes one parameter a method takes, as text.
type Param struct {
	Name, Default, Doc string
}

// Spec is a method that can be run by name.
type Spec struct {
	Doc    string
	Params []Param
	Layer  bool // takes a layer (LayerGradCam finds the last convolution without one)
	// Distribution says the baselines are a distribution: rows to draw
	// from or average over (the Shap methods), as Captum requires.
	Distribution bool
	// Build makes the method on a network, with a layer name when Layer is
	// set and the parameters from Resolve.
	Build func(nt *attr.Net, layer string, p Values) (attr.Method, error)
}

// Values are the parameter values of one run, checked against the
// method's by Resolve.
type Values map[string]string

func (p Values) int(name string) (int, error) {
	v, err := strconv.Atoi(p[name])
	if err != nil {
		return 0, fmt.Errorf("parameter %s=%q: want an integer", name, p[name])
	}
	return v, bounds[name].check(name, float64(v))
}

func (p Values) float(name string) (float64, error) {
	v, err := strconv.ParseFloat(p[name], 64)
	if err != nil {
		return 0, fmt.Errorf("parameter %s=%q: want a number", name, p[name])
	}
	return v, bounds[name].check(name, v)
}

func (p Values) bool(name string) (bool, error) {
	v, err := strconv.ParseBool(p[name])
	if err != nil {
		return false, fmt.Errorf("parameter %s=%q: want true or false", name, p[name])
	}
	return v, nil
}

// ints reads "3,8,8".
func (p Values) ints(name string) ([]int, error) {
	var out []int
	for _, s := range strings.Split(p[name], ",") {
		v, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("parameter %s=%q: want integers separated by commas", name, p[name])
		}
		if err := bounds[name].check(name, float64(v)); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if len(out) > maxDims {
		return nil, fmt.Errorf("parameter %s=%q: want at most %d integers", name, p[name], maxDims)
	}
	return out, nil
}

// maxDims is the most integers a list parameter (a window, strides, a
// neuron's index) holds: a tensor's rank without the batch dimension.
const maxDims = 8

// bound is the range a numeric parameter must lie in, inclusive. Every
// value is also finite (no NaN, no infinity).
type bound struct {
	lo, hi float64
	set    bool // a bound; the zero bound checks only finiteness
}

// check refuses a value outside the bound, or not finite, naming the
// parameter and the range.
func (b bound) check(name string, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("parameter %s=%g: want a finite number", name, v)
	}
	if b.set && (v < b.lo || v > b.hi) {
		return fmt.Errorf("parameter %s=%s: want %s to %s", name, strconv.FormatFloat(v, 'g', -1, 64),
			strconv.FormatFloat(b.lo, 'g', -1, 64), strconv.FormatFloat(b.hi, 'g', -1, 64))
	}
	return nil
}

// Bounds are the ranges of the numeric parameters, by name, whichever
// method takes them: they keep a request's work and memory finite (a
// model call's rows are at most about n_steps, n_samples or
// perturbations_per_eval times the batch) and refuse negative counts
// before anything runs. The command line and Insights share them.
var bounds = map[string]bound{
	"n_steps":                {1, 1000, true},
	"n_samples":              {1, 1000, true},
	"nt_samples":             {1, 500, true},
	"internal_batch_size":    {0, 1000, true},
	"perturbations_per_eval": {0, 1000, true},
	"batch_size":             {0, 1000, true},
	"feature_grid":           {0, 4096, true},
	"seed":                   {0, math.MaxInt64, true},
	"stdevs":                 {0, 1e6, true},
	"epsilon":                {0, 1e6, true},
	"gamma":                  {0, 1e6, true},
	"sliding_window_shapes":  {1, 4096, true},
	"strides":                {1, 4096, true},
	"neuron":                 {0, 1 << 24, true},

	// AblationCAM's share of the channels ablated.
	"ratio_channels_to_ablate": {0, 1, true},
}

// Bound returns the range of a numeric parameter, and whether it has one.
func Bound(name string) (lo, hi float64, ok bool) {
	b, ok := bounds[name]
	return b.lo, b.hi, ok
}

// checkValue refuses a parameter's value that parses but lies outside its
// bound (values that do not parse are the method's Build to report).
func checkValue(name, value string) error {
	b, ok := bounds[name]
	if !ok || value == "" {
		return nil
	}
	for _, s := range strings.Split(value, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return nil
		}
		if err := b.check(name, v); err != nil {
			return err
		}
	}
	return nil
}

// fileParams are the parameters whose values name files on the machine
// that runs the method.
var fileParams = map[string]bool{"feature_mask": true}

// IsFile says whether a parameter's value names files (feature_mask, or
// any parameter documented as taking .npy files): Resolve with NoFiles
// refuses it.
func IsFile(p Param) bool {
	return fileParams[p.Name] || strings.Contains(p.Doc, ".npy")
}

// Option changes what Resolve accepts.
type Option func(*options)

type options struct{ noFiles bool }

// NoFiles makes Resolve refuse parameters that name files (IsFile) with
// a value: for requests from the network (Insights), which must not make
// the server open files. The command line keeps them.
func NoFiles() Option { return func(o *options) { o.noFiles = true } }

// arg names a parameter and where its value goes: an *int, *uint64,
// *float64, *bool or *string.
type arg struct {
	name string
	dst  any
}

// read sets each destination from its parameter, in order, and stops at
// the first that does not parse; parameters absent from p leave theirs
// unchanged.
func (p Values) read(args ...arg) error {
	for _, a := range args {
		if _, ok := p[a.name]; !ok {
			continue
		}
		var err error
		switch d := a.dst.(type) {
		case *int:
			*d, err = p.int(a.name)
		case *uint64:
			var v int
			v, err = p.int(a.name)
			*d = uint64(v)
		case *float64:
			*d, err = p.float(a.name)
		case *bool:
			*d, err = p.bool(a.name)
		case *string:
			*d = p[a.name]
		default:
			panic(fmt.Sprintf("methods: parameter %s read into a %T", a.name, a.dst))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

var pathParams = []Param{
	{"n_steps", "50", "number of integration points"},
	{"method", "gausslegendre", "riemann_left, riemann_right, riemann_middle, riemann_trapezoid or gausslegendre"},
	{"internal_batch_size", "0", "rows per engine call (0: all)"},
}

var (
	ppeParam   = Param{"perturbations_per_eval", "0", "copies per model call (0: chosen from the input size)"}
	seedParam  = Param{"seed", "0", "random seed"}
	shapParams = []Param{{"n_samples", "5", "draws per example"}, {"stdevs", "0", "noise added to the input"}, seedParam}
)

var maskParam = Param{"feature_mask", "", "features from .npy files of int64 ids, one per input (comma-separated), each broadcasting to its input without the batch dimension or with one of 1; overrides feature_grid"}

var gridParam = Param{"feature_grid", "0", "features: squares of this many pixels per side across the channels of an image ([N,C,H,W]), or runs of this many elements (0: every element is a feature)"}

// masked builds a perturbation method whose feature mask comes from the
// feature_mask files or, when the inputs are known, from the feature_grid
// parameter.
func masked(p Values, build func(mask []*tensor.Tensor) attr.Method) (attr.Method, error) {
	if files := p["feature_mask"]; files != "" {
		var masks []*tensor.Tensor
		for _, f := range strings.Split(files, ",") {
			m, err := npy.ReadFile(strings.TrimSpace(f))
			if err != nil {
				return nil, fmt.Errorf("parameter feature_mask: %w", err)
			}
			if m.DType != tensor.Int64 {
				return nil, fmt.Errorf("parameter feature_mask: %s holds %v, want int64 feature ids", f, m.DType)
			}
			masks = append(masks, m)
		}
		return build(masks), nil
	}
	cell, err := p.int("feature_grid")
	if err != nil {
		return nil, err
	}
	if cell < 0 {
		return nil, fmt.Errorf("parameter feature_grid=%d: want 0 or more", cell)
	}
	if cell <= 1 {
		return build(nil), nil
	}
	return gridMethod{cell: cell, build: build}, nil
}

// args are the arguments several methods take, by parameter name; those
// a method does not take (not among its Params) stay zero.
type args struct {
	steps  int     // n_steps
	method string  // method: the path integral's rule
	ibs    int     // internal_batch_size
	n      int     // n_samples
	stdevs float64 // stdevs
	seed   uint64  // seed
	ppe    int     // perturbations_per_eval
	relu   bool    // relu_attributions
}

// argsOf reads the arguments a method takes.
func argsOf(p Values) (a args, err error) {
	err = p.read(arg{"n_steps", &a.steps}, arg{"method", &a.method}, arg{"internal_batch_size", &a.ibs},
		arg{"n_samples", &a.n}, arg{"stdevs", &a.stdevs}, arg{"seed", &a.seed},
		arg{"perturbations_per_eval", &a.ppe}, arg{"relu_attributions", &a.relu})
	return
}

// perturbed is masked for the perturbation methods: it also reads their
// arguments (perturbations_per_eval, n_samples, seed).
func perturbed(p Values, build func(mask []*tensor.Tensor, a args) attr.Method) (attr.Method, error) {
	a, err := argsOf(p)
	if err != nil {
		return nil, err
	}
	return masked(p, func(mask []*tensor.Tensor) attr.Method { return build(mask, a) })
}

// gridMethod runs a method with a grid feature mask shaped for its inputs.
type gridMethod struct {
	cell  int
	build func(mask []*tensor.Tensor) attr.Method
}

func (g gridMethod) Attribute(ctx context.Context, inputs []*tensor.Tensor, o attr.Options) (*attr.Result, error) {
	masks := make([]*tensor.Tensor, len(inputs))
	next := 0
	for i, x := range inputs {
		masks[i], next = GridMask(x.Shape, g.cell, next)
	}
	return g.build(masks).Attribute(ctx, inputs, o)
}

// GridMask returns a feature mask for inputs of a shape (batch first)
// that groups an image's [N, C, H, W] pixels into cell×cell squares
// across channels, or other inputs' elements into runs of cell, with ids
// from first on; it also returns the next free id. The mask has a batch
// dimension of 1 and broadcasts over the batch.
func GridMask(shape []int, cell, first int) (*tensor.Tensor, int) {
	ms := append([]int{1}, shape[1:]...)
	mask := tensor.NewInt(ms...)
	if len(shape) == 4 {
		c, h, w := shape[1], shape[2], shape[3]
		cols := (w + cell - 1) / cell
		for k := 0; k < c; k++ {
			for y := 0; y < h; y++ {
				for x := 0; x < w; x++ {
					mask.I[(k*h+y)*w+x] = int64(first + (y/cell)*cols + x/cell)
				}
			}
		}
		return mask, first + ((h+cell-1)/cell)*cols
	}
	for i := range mask.I {
		mask.I[i] = int64(first + i/cell)
	}
	return mask, first + (len(mask.I)+cell-1)/cell
}

// DefaultDistribution returns, for inputs (batch first), the baseline
// distribution used when none is given: two rows, zeros and value.
func DefaultDistribution(inputs []*tensor.Tensor, value float32) []*tensor.Tensor {
	out := make([]*tensor.Tensor, len(inputs))
	for i, x := range inputs {
		b := tensor.New(append([]int{2}, x.Shape[1:]...)...)
		for e := b.Len() / 2; e < b.Len(); e++ {
			b.F[e] = value
		}
		out[i] = b
	}
	return out
}

var neuronParam = Param{"neuron", "", "the neuron: its index in the layer's output, without the batch dimension, e.g. 5,3,3 (required)"}

// neuronOf reads the neuron of a neuron method.
func neuronOf(layer string, p Values) (attr.Neuron, error) {
	if layer == "" {
		return attr.Neuron{}, fmt.Errorf("neuron methods need a layer")
	}
	if p["neuron"] == "" {
		return attr.Neuron{}, fmt.Errorf("neuron methods need the parameter neuron (its index in the layer's output, e.g. 5,3,3)")
	}
	idx, err := p.ints("neuron")
	return attr.Neuron{Layer: layer, Index: idx}, err
}

// neuronMethod is a neuron method: its neuron parameter, then params.
func neuronMethod(doc string, params []Param, build func(nt *attr.Net, nr attr.Neuron, p Values) (attr.Method, error)) Spec {
	return Spec{Doc: doc, Layer: true, Params: append([]Param{neuronParam}, params...),
		Build: func(nt *attr.Net, layer string, p Values) (attr.Method, error) {
			nr, err := neuronOf(layer, p)
			if err != nil {
				return nil, err
			}
			return build(nt, nr, p)
		}}
}

// autoOcclusion is Occlusion with a window chosen from the input's shape
// (Captum has no default): for [N, C, H, W], all channels and an eighth of
// H and W; otherwise ones but an eighth of the last dimension; strides
// half the window unless given.
type autoOcclusion struct {
	nt      *attr.Net
	strides []int
	ppe     int
}

func (a autoOcclusion) Attribute(ctx context.Context, inputs []*tensor.Tensor, o attr.Options) (*attr.Result, error) {
	oc := &attr.Occlusion{Model: a.nt, PerturbationsPerEval: a.ppe}
	for _, x := range inputs {
		if x.Rank() < 2 {
			return nil, fmt.Errorf("Occlusion: input of shape %v has no batch dimension", x.Shape)
		}
		w := make([]int, x.Rank()-1)
		for i := range w {
			w[i] = 1
		}
		if x.Rank() == 4 {
			w[0], w[1], w[2] = x.Shape[1], max(1, x.Shape[2]/8), max(1, x.Shape[3]/8)
		} else {
			w[len(w)-1] = max(1, x.Shape[x.Rank()-1]/8)
		}
		s := a.strides
		if s == nil {
			s = make([]int, len(w))
			for i, d := range w {
				s[i] = max(1, d/2)
			}
		}
		oc.SlidingWindowShapes = append(oc.SlidingWindowShapes, w)
		oc.Strides = append(oc.Strides, s)
	}
	return oc.Attribute(ctx, inputs, o)
}

// Resolve overlays the given name=value pairs on the method's defaults,
// refusing names the method does not take, numbers outside their bounds
// (Bound) and, with NoFiles, parameters that name files.
func Resolve(name string, m Spec, given []string, opts ...Option) (Values, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	p := Values{}
	valid := map[string]bool{}
	files := map[string]bool{}
	for _, q := range m.Params {
		p[q.Name] = q.Default
		valid[q.Name] = true
		files[q.Name] = IsFile(q)
	}
	for _, kv := range given {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("parameter %q: want name=value", kv)
		}
		if !valid[k] {
			var names []string
			for n := range valid {
				names = append(names, n)
			}
			sort.Strings(names)
			if len(names) == 0 {
				return nil, fmt.Errorf("%s takes no parameters (got %q)", name, k)
			}
			return nil, fmt.Errorf("%s has no parameter %q (it takes: %s)", name, k, strings.Join(names, ", "))
		}
		if o.noFiles && files[k] && v != "" {
			return nil, fmt.Errorf("parameter %s names files: not accepted here", k)
		}
		if err := checkValue(k, v); err != nil {
			return nil, err
		}
		p[k] = v
	}
	return p, nil
}
