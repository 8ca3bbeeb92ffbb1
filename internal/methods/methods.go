// Package methods is the table of attribution methods that loupe's command
// line and Insights server run by name: Captum's names, their parameters as
// text with defaults, and how to build each on a network.
package methods

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/graph"
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
	return v, nil
}

func (p Values) float(name string) (float64, error) {
	v, err := strconv.ParseFloat(p[name], 64)
	if err != nil {
		return 0, fmt.Errorf("parameter %s=%q: want a number", name, p[name])
	}
	return v, nil
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
		out = append(out, v)
	}
	return out, nil
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

// counts are the perturbation methods' shared numeric arguments; those a
// method does not take (not among its Params) stay zero.
type counts struct {
	ppe, n int // perturbations_per_eval, n_samples
	seed   uint64
}

// perturbed is masked for the perturbation methods: it also reads their
// perturbations_per_eval, n_samples and seed.
func perturbed(p Values, build func(mask []*tensor.Tensor, c counts) attr.Method) (attr.Method, error) {
	var c counts
	var seed int
	for _, a := range []struct {
		name string
		dst  *int
	}{{"perturbations_per_eval", &c.ppe}, {"n_samples", &c.n}, {"seed", &seed}} {
		if _, ok := p[a.name]; !ok {
			continue
		}
		v, err := p.int(a.name)
		if err != nil {
			return nil, err
		}
		*a.dst = v
	}
	c.seed = uint64(seed)
	return masked(p, func(mask []*tensor.Tensor) attr.Method { return build(mask, c) })
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

// shapArgs reads the gradient Shap methods' n_samples, stdevs and seed.
func shapArgs(p Values) (int, float64, uint64, error) {
	n, err := p.int("n_samples")
	if err != nil {
		return 0, 0, 0, err
	}
	sd, err := p.float("stdevs")
	if err != nil {
		return 0, 0, 0, err
	}
	seed, err := p.int("seed")
	return n, sd, uint64(seed), err
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

// pathArgs reads the path methods' n_steps and internal_batch_size.
func pathArgs(p Values) (int, int, error) {
	n, err := p.int("n_steps")
	if err != nil {
		return 0, 0, err
	}
	ibs, err := p.int("internal_batch_size")
	return n, ibs, err
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

// neuronMethod is a neuron method that takes no other parameters.
func neuronMethod(doc string, build func(nt *attr.Net, nr attr.Neuron) attr.Method) Spec {
	return Spec{Doc: doc, Layer: true, Params: []Param{neuronParam},
		Build: func(nt *attr.Net, layer string, p Values) (attr.Method, error) {
			nr, err := neuronOf(layer, p)
			if err != nil {
				return nil, err
			}
			return build(nt, nr), nil
		}}
}

// neuronPathMethod is a neuron method along a path.
func neuronPathMethod(doc string, build func(nt *attr.Net, nr attr.Neuron, n int, method string, ibs int) attr.Method) Spec {
	return Spec{Doc: doc, Layer: true, Params: append([]Param{neuronParam}, pathParams...),
		Build: func(nt *attr.Net, layer string, p Values) (attr.Method, error) {
			nr, err := neuronOf(layer, p)
			if err != nil {
				return nil, err
			}
			n, ibs, err := pathArgs(p)
			if err != nil {
				return nil, err
			}
			return build(nt, nr, n, p["method"], ibs), nil
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

// Table lists the methods by Captum's names.
func Table() map[string]Spec {
	return map[string]Spec{
		"Saliency": {Doc: "gradient of the target (absolute value unless abs=false)", Params: []Param{{"abs", "true", "take the absolute value"}},
			Build: func(nt *attr.Net, _ string, p Values) (attr.Method, error) {
				abs, err := p.bool("abs")
				return &attr.Saliency{Net: nt, Signed: !abs}, err
			}},
		"InputXGradient": {Doc: "input times gradient",
			Build: func(nt *attr.Net, _ string, p Values) (attr.Method, error) { return &attr.InputXGradient{Net: nt}, nil }},
		"IntegratedGradients": {Doc: "path integral of gradients from the baseline", Params: pathParams,
			Build: func(nt *attr.Net, _ string, p Values) (attr.Method, error) {
				n, ibs, err := pathArgs(p)
				return &attr.IntegratedGradients{Net: nt, NSteps: n, Method: p["method"], InternalBatchSize: ibs}, err
			}},
		"DeepLift": {Doc: "DeepLift rescale rule from the baseline",
			Build: func(nt *attr.Net, _ string, p Values) (attr.Method, error) { return &attr.DeepLift{Net: nt}, nil }},
		"GuidedBackprop": {Doc: "gradient with ReLUs passing back positive gradients only",
			Build: func(nt *attr.Net, _ string, p Values) (attr.Method, error) { return &attr.GuidedBackprop{Net: nt}, nil }},
		"Deconvolution": {Doc: "deconvolution (ReLUs pass back the positive incoming gradient)",
			Build: func(nt *attr.Net, _ string, p Values) (attr.Method, error) { return &attr.Deconvolution{Net: nt}, nil }},
		"LRP": {Doc: "layer-wise relevance propagation, a rule per kind of layer (a composite)",
			Params: []Param{{"conv_rule", "epsilon", "rule of the convolutions: epsilon, gamma, alpha1beta0 or identity"},
				{"linear_rule", "epsilon", "rule of the dense layers (Gemm, MatMul)"}, {"other_rule", "epsilon", "rule of pooling and batch norm"},
				{"epsilon", "1e-9", "the epsilon rule's stabiliser"}, {"gamma", "0.25", "the gamma rule's factor"}},
			Build: func(nt *attr.Net, _ string, p Values) (attr.Method, error) {
				eps, err := p.float("epsilon")
				if err != nil {
					return nil, err
				}
				gamma, err := p.float("gamma")
				if err != nil {
					return nil, err
				}
				rules := map[string]*attr.LRPRule{}
				for _, k := range []string{"conv_rule", "linear_rule", "other_rule"} {
					kind, ok := map[string]attr.LRPRuleKind{"epsilon": attr.Epsilon, "gamma": attr.Gamma, "alpha1beta0": attr.Alpha1Beta0, "identity": attr.Identity}[p[k]]
					if !ok {
						return nil, fmt.Errorf("parameter %s=%q: want epsilon, gamma, alpha1beta0 or identity", k, p[k])
					}
					rules[k] = &attr.LRPRule{Kind: kind, Epsilon: eps, Gamma: gamma}
				}
				return &attr.LRP{Net: nt, Rules: func(n *graph.Node) *attr.LRPRule {
					switch n.OpType {
					case "Conv":
						return rules["conv_rule"]
					case "Gemm", "MatMul":
						return rules["linear_rule"]
					}
					return rules["other_rule"]
				}}, nil
			}},
		"GradientShap": {Doc: "expected gradients from baseline samples", Distribution: true,
			Params: shapParams,
			Build: func(nt *attr.Net, _ string, p Values) (attr.Method, error) {
				n, sd, seed, err := shapArgs(p)
				return &attr.GradientShap{Net: nt, NSamples: n, Stdevs: []float64{sd}, Seed: seed}, err
			}},
		"DeepLiftShap": {Doc: "DeepLift averaged over a distribution of baselines", Distribution: true,
			Build: func(nt *attr.Net, _ string, p Values) (attr.Method, error) { return &attr.DeepLiftShap{Net: nt}, nil }},
		"LayerDeepLiftShap": {Doc: "LayerDeepLift averaged over a distribution of baselines", Layer: true, Distribution: true,
			Build: func(nt *attr.Net, layer string, p Values) (attr.Method, error) {
				return &attr.LayerDeepLiftShap{Net: nt, Layer: layer}, nil
			}},
		"LayerGradientShap": {Doc: "expected gradients of a layer from baseline samples", Layer: true, Distribution: true,
			Params: shapParams,
			Build: func(nt *attr.Net, layer string, p Values) (attr.Method, error) {
				n, sd, seed, err := shapArgs(p)
				return &attr.LayerGradientShap{Net: nt, Layer: layer, NSamples: n, Stdevs: []float64{sd}, Seed: seed}, err
			}},
		"FeatureAblation": {Doc: "change of the target when each feature is set to the baseline",
			Params: []Param{maskParam, gridParam, ppeParam},
			Build: func(nt *attr.Net, _ string, p Values) (attr.Method, error) {
				return perturbed(p, func(mask []*tensor.Tensor, c counts) attr.Method {
					return &attr.FeatureAblation{Model: nt, FeatureMask: mask, PerturbationsPerEval: c.ppe}
				})
			}},
		"ShapleyValues": {Doc: "exact Shapley values over every coalition of the features (2^features model evaluations: give a feature mask or grid of at most 12 features)",
			Params: []Param{maskParam, gridParam, ppeParam},
			Build: func(nt *attr.Net, _ string, p Values) (attr.Method, error) {
				return perturbed(p, func(mask []*tensor.Tensor, c counts) attr.Method {
					return &attr.ShapleyValues{Model: nt, FeatureMask: mask, PerturbationsPerEval: c.ppe}
				})
			}},
		"FeaturePermutation": {Doc: "change of the target when each feature is shuffled across the batch (needs several examples)",
			Params: []Param{maskParam, gridParam, ppeParam, seedParam},
			Build: func(nt *attr.Net, _ string, p Values) (attr.Method, error) {
				return perturbed(p, func(mask []*tensor.Tensor, c counts) attr.Method {
					return &attr.FeaturePermutation{Model: nt, FeatureMask: mask, PerturbationsPerEval: c.ppe, Seed: c.seed}
				})
			}},
		"Lime": {Doc: "weighted linear surrogate fitted to random on/off samples of the features (lasso, alpha 0.01, as Captum)",
			Params: []Param{maskParam, gridParam, {"n_samples", "50", "samples"}, seedParam},
			Build: func(nt *attr.Net, _ string, p Values) (attr.Method, error) {
				return perturbed(p, func(mask []*tensor.Tensor, c counts) attr.Method {
					return &attr.Lime{Model: nt, FeatureMask: mask, NSamples: c.n, Seed: c.seed}
				})
			}},
		"KernelShap": {Doc: "Shapley values estimated by a linear fit with the Shapley kernel",
			Params: []Param{maskParam, gridParam, {"n_samples", "25", "samples"}, seedParam},
			Build: func(nt *attr.Net, _ string, p Values) (attr.Method, error) {
				return perturbed(p, func(mask []*tensor.Tensor, c counts) attr.Method {
					return &attr.KernelShap{Model: nt, FeatureMask: mask, NSamples: c.n, Seed: c.seed}
				})
			}},
		"NoiseTunnel": {Doc: "an inner method averaged over noisy copies of the input (SmoothGrad and kin)",
			Params: []Param{{"inner", "Saliency", "the method averaged: Saliency, InputXGradient, IntegratedGradients, GuidedBackprop, Deconvolution or DeepLift"},
				{"nt_type", "smoothgrad", "smoothgrad, smoothgrad_sq or vargrad"}, {"nt_samples", "5", "noisy copies"}, {"stdevs", "1", "noise standard deviation"}, seedParam},
			Build: func(nt *attr.Net, _ string, p Values) (attr.Method, error) {
				var inner attr.Method
				switch p["inner"] {
				case "Saliency":
					inner = &attr.Saliency{Net: nt}
				case "InputXGradient":
					inner = &attr.InputXGradient{Net: nt}
				case "IntegratedGradients":
					inner = &attr.IntegratedGradients{Net: nt}
				case "GuidedBackprop":
					inner = &attr.GuidedBackprop{Net: nt}
				case "Deconvolution":
					inner = &attr.Deconvolution{Net: nt}
				case "DeepLift":
					inner = &attr.DeepLift{Net: nt}
				default:
					return nil, fmt.Errorf("parameter inner=%q: want Saliency, InputXGradient, IntegratedGradients, GuidedBackprop, Deconvolution or DeepLift", p["inner"])
				}
				n, err := p.int("nt_samples")
				if err != nil {
					return nil, err
				}
				sd, err := p.float("stdevs")
				if err != nil {
					return nil, err
				}
				seed, err := p.int("seed")
				return &attr.NoiseTunnel{Method: inner, Type: p["nt_type"], NSamples: n, Stdevs: []float64{sd}, Seed: uint64(seed)}, err
			}},
		"Occlusion": {Doc: "sliding window set to the baseline",
			Params: []Param{{"sliding_window_shapes", "auto", "window shape without the batch dimension, e.g. 3,15,15 (auto: all channels and an eighth of the height and width, or of the last dimension)"},
				{"strides", "", "steps, e.g. 3,8,8 (default: 1, or half the window with auto)"}, ppeParam},
			Build: func(nt *attr.Net, _ string, p Values) (attr.Method, error) {
				ppe, err := p.int("perturbations_per_eval")
				if err != nil {
					return nil, err
				}
				var strides []int
				if p["strides"] != "" {
					if strides, err = p.ints("strides"); err != nil {
						return nil, err
					}
				}
				if p["sliding_window_shapes"] == "auto" || p["sliding_window_shapes"] == "" {
					return autoOcclusion{nt: nt, strides: strides, ppe: ppe}, nil
				}
				w, err := p.ints("sliding_window_shapes")
				if err != nil {
					return nil, err
				}
				oc := &attr.Occlusion{Model: nt, SlidingWindowShapes: [][]int{w}, PerturbationsPerEval: ppe}
				if strides != nil {
					oc.Strides = [][]int{strides}
				}
				return oc, nil
			}},
		"ShapleyValueSampling": {Doc: "Shapley values by sampling permutations of the features",
			Params: []Param{maskParam, gridParam, {"n_samples", "25", "permutations"}, ppeParam, seedParam},
			Build: func(nt *attr.Net, _ string, p Values) (attr.Method, error) {
				return perturbed(p, func(mask []*tensor.Tensor, c counts) attr.Method {
					return &attr.ShapleyValueSampling{Model: nt, FeatureMask: mask, NSamples: c.n, PerturbationsPerEval: c.ppe, Seed: c.seed}
				})
			}},
		"LayerGradCam": {Doc: "Grad-CAM map of a layer (default: the last convolution)", Layer: true,
			Params: []Param{{"relu_attributions", "false", "clamp the map at zero"}},
			Build: func(nt *attr.Net, layer string, p Values) (attr.Method, error) {
				relu, err := p.bool("relu_attributions")
				return &attr.LayerGradCam{Net: nt, Layer: layer, ReluAttributions: relu}, err
			}},
		"GuidedGradCam": {Doc: "guided backpropagation times the Grad-CAM map of a layer (default: the last convolution)", Layer: true,
			Build: func(nt *attr.Net, layer string, p Values) (attr.Method, error) {
				return &attr.GuidedGradCam{Net: nt, Layer: layer}, nil
			}},
		"LayerGradientXActivation": {Doc: "a layer's activations times their gradients", Layer: true,
			Build: func(nt *attr.Net, layer string, p Values) (attr.Method, error) {
				return &attr.LayerGradientXActivation{Net: nt, Layer: layer}, nil
			}},
		"LayerDeepLift": {Doc: "DeepLift contributions of a layer's neurons", Layer: true,
			Build: func(nt *attr.Net, layer string, p Values) (attr.Method, error) {
				return &attr.LayerDeepLift{Net: nt, Layer: layer}, nil
			}},
		"InternalInfluence": {Doc: "gradients of a layer integrated along the path from the baseline", Layer: true, Params: pathParams,
			Build: func(nt *attr.Net, layer string, p Values) (attr.Method, error) {
				n, ibs, err := pathArgs(p)
				return &attr.InternalInfluence{Net: nt, Layer: layer, NSteps: n, Method: p["method"], InternalBatchSize: ibs}, err
			}},
		"NeuronGradient": neuronMethod("gradient of one neuron of a layer", func(nt *attr.Net, nr attr.Neuron) attr.Method {
			return &attr.NeuronGradient{Net: nt, Neuron: nr}
		}),
		"NeuronGuidedBackprop": neuronMethod("guided backpropagation from one neuron", func(nt *attr.Net, nr attr.Neuron) attr.Method {
			return &attr.NeuronGuidedBackprop{Net: nt, Neuron: nr}
		}),
		"NeuronDeconvolution": neuronMethod("deconvolution from one neuron", func(nt *attr.Net, nr attr.Neuron) attr.Method {
			return &attr.NeuronDeconvolution{Net: nt, Neuron: nr}
		}),
		"NeuronDeepLift": neuronMethod("DeepLift contributions to one neuron", func(nt *attr.Net, nr attr.Neuron) attr.Method {
			return &attr.NeuronDeepLift{Net: nt, Neuron: nr}
		}),
		"NeuronIntegratedGradients": neuronPathMethod("integrated gradients of one neuron", func(nt *attr.Net, nr attr.Neuron, n int, method string, ibs int) attr.Method {
			return &attr.NeuronIntegratedGradients{Net: nt, Neuron: nr, NSteps: n, Method: method, InternalBatchSize: ibs}
		}),
		"NeuronConductance": neuronPathMethod("conductance of the inputs through one neuron", func(nt *attr.Net, nr attr.Neuron, n int, method string, ibs int) attr.Method {
			return &attr.NeuronConductance{Net: nt, Neuron: nr, NSteps: n, Method: method, InternalBatchSize: ibs}
		}),
		"NeuronDeepLiftShap": {Doc: "NeuronDeepLift averaged over a distribution of baselines", Layer: true, Distribution: true, Params: []Param{neuronParam},
			Build: func(nt *attr.Net, layer string, p Values) (attr.Method, error) {
				nr, err := neuronOf(layer, p)
				return &attr.NeuronDeepLiftShap{Net: nt, Neuron: nr}, err
			}},
		"NeuronGradientShap": {Doc: "expected gradients of one neuron from baseline samples", Layer: true, Distribution: true,
			Params: append([]Param{neuronParam}, shapParams...),
			Build: func(nt *attr.Net, layer string, p Values) (attr.Method, error) {
				nr, err := neuronOf(layer, p)
				if err != nil {
					return nil, err
				}
				n, sd, seed, err := shapArgs(p)
				return &attr.NeuronGradientShap{Net: nt, Neuron: nr, NSamples: n, Stdevs: []float64{sd}, Seed: seed}, err
			}},
		"NeuronFeatureAblation": {Doc: "change of one neuron when each input feature is set to the baseline", Layer: true,
			Params: []Param{neuronParam, maskParam, gridParam, ppeParam},
			Build: func(nt *attr.Net, layer string, p Values) (attr.Method, error) {
				nr, err := neuronOf(layer, p)
				if err != nil {
					return nil, err
				}
				return perturbed(p, func(mask []*tensor.Tensor, c counts) attr.Method {
					return &attr.NeuronFeatureAblation{Net: nt, Neuron: nr, FeatureMask: mask, PerturbationsPerEval: c.ppe}
				})
			}},
		"LayerFeatureAblation": {Doc: "change of the target when each neuron of a layer is set to zero", Layer: true,
			Params: []Param{{"perturbations_per_eval", "0", "copies per model call (0: chosen from the layer size)"}},
			Build: func(nt *attr.Net, layer string, p Values) (attr.Method, error) {
				n, err := p.int("perturbations_per_eval")
				return &attr.LayerFeatureAblation{Net: nt, Layer: layer, PerturbationsPerEval: n}, err
			}},
		"LayerActivation": {Doc: "a layer's activations", Layer: true,
			Build: func(nt *attr.Net, layer string, p Values) (attr.Method, error) {
				return &attr.LayerActivation{Net: nt, Layer: layer}, nil
			}},
		"LayerConductance": {Doc: "conductance of a layer's neurons", Layer: true, Params: pathParams,
			Build: func(nt *attr.Net, layer string, p Values) (attr.Method, error) {
				n, ibs, err := pathArgs(p)
				return &attr.LayerConductance{Net: nt, Layer: layer, NSteps: n, Method: p["method"], InternalBatchSize: ibs}, err
			}},
		"LayerIntegratedGradients": {Doc: "integrated gradients over a layer's values", Layer: true, Params: pathParams,
			Build: func(nt *attr.Net, layer string, p Values) (attr.Method, error) {
				n, ibs, err := pathArgs(p)
				return &attr.LayerIntegratedGradients{Net: nt, Layer: layer, NSteps: n, Method: p["method"], InternalBatchSize: ibs}, err
			}},
	}
}

// Resolve overlays the given name=value pairs on the method's defaults,
// refusing names the method does not take.
func Resolve(name string, m Spec, given []string) (Values, error) {
	p := Values{}
	valid := map[string]bool{}
	for _, q := range m.Params {
		p[q.Name] = q.Default
		valid[q.Name] = true
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
		p[k] = v
	}
	return p, nil
}
