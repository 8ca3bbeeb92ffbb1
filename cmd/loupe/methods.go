package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/loupe-ml/loupe/attr"
)

// param describes one parameter a method takes on the command line.
type param struct {
	name, def, doc string
}

// method is a method the command line can run.
type method struct {
	doc    string
	params []param
	layer  bool // needs --layer (or finds the last convolution)
	build  func(nt *attr.Net, layer string, p params) (attr.Method, error)
}

// params are the --param values of one run, checked against the method's.
type params map[string]string

func (p params) int(name string) (int, error) {
	v, err := strconv.Atoi(p[name])
	if err != nil {
		return 0, fmt.Errorf("--param %s=%q: want an integer", name, p[name])
	}
	return v, nil
}

func (p params) float(name string) (float64, error) {
	v, err := strconv.ParseFloat(p[name], 64)
	if err != nil {
		return 0, fmt.Errorf("--param %s=%q: want a number", name, p[name])
	}
	return v, nil
}

func (p params) bool(name string) (bool, error) {
	v, err := strconv.ParseBool(p[name])
	if err != nil {
		return false, fmt.Errorf("--param %s=%q: want true or false", name, p[name])
	}
	return v, nil
}

// ints reads "3,8,8".
func (p params) ints(name string) ([]int, error) {
	var out []int
	for _, s := range strings.Split(p[name], ",") {
		v, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("--param %s=%q: want integers separated by commas", name, p[name])
		}
		out = append(out, v)
	}
	return out, nil
}

var pathParams = []param{
	{"n_steps", "50", "number of integration points"},
	{"method", "gausslegendre", "riemann_left, riemann_right, riemann_middle, riemann_trapezoid or gausslegendre"},
	{"internal_batch_size", "0", "rows per engine call (0: all)"},
}

// methodTable lists the methods of the command line, Captum's names.
func methodTable() map[string]method {
	return map[string]method{
		"Saliency": {doc: "gradient of the target (absolute value unless abs=false)", params: []param{{"abs", "true", "take the absolute value"}},
			build: func(nt *attr.Net, _ string, p params) (attr.Method, error) {
				abs, err := p.bool("abs")
				return &attr.Saliency{Net: nt, Signed: !abs}, err
			}},
		"InputXGradient": {doc: "input times gradient",
			build: func(nt *attr.Net, _ string, p params) (attr.Method, error) { return &attr.InputXGradient{Net: nt}, nil }},
		"IntegratedGradients": {doc: "path integral of gradients from the baseline", params: pathParams,
			build: func(nt *attr.Net, _ string, p params) (attr.Method, error) {
				n, err := p.int("n_steps")
				if err != nil {
					return nil, err
				}
				ibs, err := p.int("internal_batch_size")
				return &attr.IntegratedGradients{Net: nt, NSteps: n, Method: p["method"], InternalBatchSize: ibs}, err
			}},
		"DeepLift": {doc: "DeepLift rescale rule from the baseline",
			build: func(nt *attr.Net, _ string, p params) (attr.Method, error) { return &attr.DeepLift{Net: nt}, nil }},
		"GuidedBackprop": {doc: "gradient with ReLUs passing back positive gradients only",
			build: func(nt *attr.Net, _ string, p params) (attr.Method, error) { return &attr.GuidedBackprop{Net: nt}, nil }},
		"Deconvolution": {doc: "deconvolution (ReLUs pass back the positive incoming gradient)",
			build: func(nt *attr.Net, _ string, p params) (attr.Method, error) { return &attr.Deconvolution{Net: nt}, nil }},
		"LRP": {doc: "layer-wise relevance propagation, epsilon rule",
			build: func(nt *attr.Net, _ string, p params) (attr.Method, error) { return &attr.LRP{Net: nt}, nil }},
		"GradientShap": {doc: "expected gradients from baseline samples (the baseline and zero)",
			params: []param{{"n_samples", "5", "draws per example"}, {"stdevs", "0", "noise added to the input"}, {"seed", "0", "random seed"}},
			build: func(nt *attr.Net, _ string, p params) (attr.Method, error) {
				n, err := p.int("n_samples")
				if err != nil {
					return nil, err
				}
				sd, err := p.float("stdevs")
				if err != nil {
					return nil, err
				}
				seed, err := p.int("seed")
				return &attr.GradientShap{Net: nt, NSamples: n, Stdevs: []float64{sd}, Seed: uint64(seed)}, err
			}},
		"FeatureAblation": {doc: "change of the target when each element is set to the baseline",
			params: []param{{"perturbations_per_eval", "0", "copies per model call (0: chosen from the input size)"}},
			build: func(nt *attr.Net, _ string, p params) (attr.Method, error) {
				n, err := p.int("perturbations_per_eval")
				return &attr.FeatureAblation{Model: nt, PerturbationsPerEval: n}, err
			}},
		"Occlusion": {doc: "sliding window set to the baseline",
			params: []param{{"sliding_window_shapes", "", "window shape, e.g. 3,15,15 (required)"}, {"strides", "", "steps, e.g. 3,8,8 (default 1)"}, {"perturbations_per_eval", "0", "copies per model call (0: chosen from the input size)"}},
			build: func(nt *attr.Net, _ string, p params) (attr.Method, error) {
				if p["sliding_window_shapes"] == "" {
					return nil, fmt.Errorf("Occlusion needs --param sliding_window_shapes=...")
				}
				w, err := p.ints("sliding_window_shapes")
				if err != nil {
					return nil, err
				}
				oc := &attr.Occlusion{Model: nt, SlidingWindowShapes: [][]int{w}}
				if p["strides"] != "" {
					s, err := p.ints("strides")
					if err != nil {
						return nil, err
					}
					oc.Strides = [][]int{s}
				}
				oc.PerturbationsPerEval, err = p.int("perturbations_per_eval")
				return oc, err
			}},
		"ShapleyValueSampling": {doc: "Shapley values by sampling permutations of the elements",
			params: []param{{"n_samples", "25", "permutations"}, {"perturbations_per_eval", "0", "copies per model call (0: chosen from the input size)"}, {"seed", "0", "random seed"}},
			build: func(nt *attr.Net, _ string, p params) (attr.Method, error) {
				n, err := p.int("n_samples")
				if err != nil {
					return nil, err
				}
				ppe, err := p.int("perturbations_per_eval")
				if err != nil {
					return nil, err
				}
				seed, err := p.int("seed")
				return &attr.ShapleyValueSampling{Model: nt, NSamples: n, PerturbationsPerEval: ppe, Seed: uint64(seed)}, err
			}},
		"LayerGradCam": {doc: "Grad-CAM map of a layer (default: the last convolution)", layer: true,
			params: []param{{"relu_attributions", "false", "clamp the map at zero"}},
			build: func(nt *attr.Net, layer string, p params) (attr.Method, error) {
				relu, err := p.bool("relu_attributions")
				return &attr.LayerGradCam{Net: nt, Layer: layer, ReluAttributions: relu}, err
			}},
		"LayerActivation": {doc: "a layer's activations", layer: true,
			build: func(nt *attr.Net, layer string, p params) (attr.Method, error) {
				return &attr.LayerActivation{Net: nt, Layer: layer}, nil
			}},
		"LayerConductance": {doc: "conductance of a layer's neurons", layer: true, params: pathParams,
			build: func(nt *attr.Net, layer string, p params) (attr.Method, error) {
				n, err := p.int("n_steps")
				if err != nil {
					return nil, err
				}
				ibs, err := p.int("internal_batch_size")
				return &attr.LayerConductance{Net: nt, Layer: layer, NSteps: n, Method: p["method"], InternalBatchSize: ibs}, err
			}},
		"LayerIntegratedGradients": {doc: "integrated gradients over a layer's values", layer: true, params: pathParams,
			build: func(nt *attr.Net, layer string, p params) (attr.Method, error) {
				n, err := p.int("n_steps")
				if err != nil {
					return nil, err
				}
				ibs, err := p.int("internal_batch_size")
				return &attr.LayerIntegratedGradients{Net: nt, Layer: layer, NSteps: n, Method: p["method"], InternalBatchSize: ibs}, err
			}},
	}
}

// resolveParams overlays the user's --param values on the defaults,
// refusing names the method does not take.
func resolveParams(name string, m method, given []string) (params, error) {
	p := params{}
	valid := map[string]bool{}
	for _, q := range m.params {
		p[q.name] = q.def
		valid[q.name] = true
	}
	for _, kv := range given {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("--param %q: want name=value", kv)
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
