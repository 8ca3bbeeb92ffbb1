package methods

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// table is the methods by Captum's names, built once on first use and
// never changed: Lookup and Names are its only readers.
var table = sync.OnceValue(newTable)

// Lookup returns the method of a name (Captum's), and whether there is
// one. The Spec is the caller's: changing its Params changes no other
// caller's.
func Lookup(name string) (Spec, bool) {
	s, ok := table()[name]
	s.Params = slices.Clone(s.Params)
	return s, ok
}

// Names returns the methods' names in order.
func Names() []string { return slices.Sorted(maps.Keys(table())) }

// plain is a method of the inputs that takes no parameters.
func plain(doc string, build func(nt *attr.Net) attr.Method) Spec {
	return Spec{Doc: doc, Build: func(nt *attr.Net, _ string, _ Values) (attr.Method, error) { return build(nt), nil }}
}

// layered is a layer method that takes no parameters.
func layered(doc string, build func(nt *attr.Net, layer string) attr.Method) Spec {
	return Spec{Doc: doc, Layer: true, Build: func(nt *attr.Net, layer string, _ Values) (attr.Method, error) { return build(nt, layer), nil }}
}

// distribution marks a method whose baselines are a distribution.
func distribution(s Spec) Spec {
	s.Distribution = true
	return s
}

// simple is a method built from its arguments (args), of the inputs or,
// with layer set, of a layer.
func simple(doc string, layer bool, params []Param, build func(nt *attr.Net, layer string, a args) attr.Method) Spec {
	return Spec{Doc: doc, Layer: layer, Params: params,
		Build: func(nt *attr.Net, l string, p Values) (attr.Method, error) {
			a, err := argsOf(p)
			return build(nt, l, a), err
		}}
}

// perturbation is a perturbation method of the inputs: its features come
// from feature_mask or feature_grid, then its own parameters.
func perturbation(doc string, params []Param, build func(nt *attr.Net, mask []*tensor.Tensor, a args) attr.Method) Spec {
	return Spec{Doc: doc, Params: append([]Param{maskParam, gridParam}, params...),
		Build: func(nt *attr.Net, _ string, p Values) (attr.Method, error) {
			return perturbed(p, func(mask []*tensor.Tensor, a args) attr.Method { return build(nt, mask, a) })
		}}
}

// newTable lists the methods by Captum's names.
func newTable() map[string]Spec {
	return map[string]Spec{
		"Saliency": {Doc: "gradient of the target (absolute value unless abs=false)", Params: []Param{{"abs", "true", "take the absolute value"}},
			Build: func(nt *attr.Net, _ string, p Values) (attr.Method, error) {
				abs, err := p.bool("abs")
				return &attr.Saliency{Net: nt, Signed: !abs}, err
			}},
		"InputXGradient": plain("input times gradient", func(nt *attr.Net) attr.Method { return &attr.InputXGradient{Net: nt} }),
		"IntegratedGradients": simple("path integral of gradients from the baseline", false, pathParams, func(nt *attr.Net, _ string, a args) attr.Method {
			return &attr.IntegratedGradients{Net: nt, NSteps: a.steps, Method: a.method, InternalBatchSize: a.ibs}
		}),
		"DeepLift":       plain("DeepLift rescale rule from the baseline", func(nt *attr.Net) attr.Method { return &attr.DeepLift{Net: nt} }),
		"GuidedBackprop": plain("gradient with ReLUs passing back positive gradients only", func(nt *attr.Net) attr.Method { return &attr.GuidedBackprop{Net: nt} }),
		"Deconvolution":  plain("deconvolution (ReLUs pass back the positive incoming gradient)", func(nt *attr.Net) attr.Method { return &attr.Deconvolution{Net: nt} }),
		"LRP": {Doc: "layer-wise relevance propagation, a rule per kind of layer (a composite)",
			Params: []Param{{"conv_rule", "epsilon", "rule of the convolutions: epsilon, gamma, alpha1beta0 or identity"},
				{"linear_rule", "epsilon", "rule of the dense layers (Gemm, MatMul)"}, {"other_rule", "epsilon", "rule of pooling and batch norm"},
				{"epsilon", "1e-9", "the epsilon rule's stabiliser"}, {"gamma", "0.25", "the gamma rule's factor"}},
			Build: buildLRP},
		"GradientShap": distribution(simple("expected gradients from baseline samples", false, shapParams, func(nt *attr.Net, _ string, a args) attr.Method {
			return &attr.GradientShap{Net: nt, NSamples: a.n, Stdevs: []float64{a.stdevs}, Seed: a.seed}
		})),
		"DeepLiftShap": distribution(plain("DeepLift averaged over a distribution of baselines", func(nt *attr.Net) attr.Method { return &attr.DeepLiftShap{Net: nt} })),
		"LayerDeepLiftShap": distribution(layered("LayerDeepLift averaged over a distribution of baselines", func(nt *attr.Net, layer string) attr.Method {
			return &attr.LayerDeepLiftShap{Net: nt, Layer: layer}
		})),
		"LayerGradientShap": distribution(simple("expected gradients of a layer from baseline samples", true, shapParams, func(nt *attr.Net, layer string, a args) attr.Method {
			return &attr.LayerGradientShap{Net: nt, Layer: layer, NSamples: a.n, Stdevs: []float64{a.stdevs}, Seed: a.seed}
		})),
		"FeatureAblation": perturbation("change of the target when each feature is set to the baseline", []Param{ppeParam},
			func(nt *attr.Net, mask []*tensor.Tensor, a args) attr.Method {
				return &attr.FeatureAblation{Model: nt, FeatureMask: mask, PerturbationsPerEval: a.ppe}
			}),
		"ShapleyValues": perturbation("exact Shapley values over every coalition of the features (2^features model evaluations: give a feature mask or grid of at most 12 features)", []Param{ppeParam},
			func(nt *attr.Net, mask []*tensor.Tensor, a args) attr.Method {
				return &attr.ShapleyValues{Model: nt, FeatureMask: mask, PerturbationsPerEval: a.ppe}
			}),
		"FeaturePermutation": perturbation("change of the target when each feature is shuffled across the batch (needs several examples)", []Param{ppeParam, seedParam},
			func(nt *attr.Net, mask []*tensor.Tensor, a args) attr.Method {
				return &attr.FeaturePermutation{Model: nt, FeatureMask: mask, PerturbationsPerEval: a.ppe, Seed: a.seed}
			}),
		"Lime": perturbation("weighted linear surrogate fitted to random on/off samples of the features (lasso, alpha 0.01, as Captum)", []Param{{"n_samples", "50", "samples"}, seedParam},
			func(nt *attr.Net, mask []*tensor.Tensor, a args) attr.Method {
				return &attr.Lime{Model: nt, FeatureMask: mask, NSamples: a.n, Seed: a.seed}
			}),
		"KernelShap": perturbation("Shapley values estimated by a linear fit with the Shapley kernel", []Param{{"n_samples", "25", "samples"}, seedParam},
			func(nt *attr.Net, mask []*tensor.Tensor, a args) attr.Method {
				return &attr.KernelShap{Model: nt, FeatureMask: mask, NSamples: a.n, Seed: a.seed}
			}),
		"NoiseTunnel": {Doc: "an inner method averaged over noisy copies of the input (SmoothGrad and kin)",
			Params: []Param{{"inner", "Saliency", "the method averaged: " + innerNames},
				{"nt_type", "smoothgrad", "smoothgrad, smoothgrad_sq or vargrad"}, {"nt_samples", "5", "noisy copies"}, {"stdevs", "1", "noise standard deviation"}, seedParam},
			Build: buildNoiseTunnel},
		"Occlusion": {Doc: "sliding window set to the baseline",
			Params: []Param{{"sliding_window_shapes", "auto", "window shape without the batch dimension, e.g. 3,15,15 (auto: all channels and an eighth of the height and width, or of the last dimension)"},
				{"strides", "", "steps, e.g. 3,8,8 (default: 1, or half the window with auto)"}, ppeParam},
			Build: buildOcclusion},
		"ShapleyValueSampling": perturbation("Shapley values by sampling permutations of the features", []Param{{"n_samples", "25", "permutations"}, ppeParam, seedParam},
			func(nt *attr.Net, mask []*tensor.Tensor, a args) attr.Method {
				return &attr.ShapleyValueSampling{Model: nt, FeatureMask: mask, NSamples: a.n, PerturbationsPerEval: a.ppe, Seed: a.seed}
			}),
		"LayerGradCam": simple("Grad-CAM map of a layer (default: the last convolution)", true, []Param{{"relu_attributions", "false", "clamp the map at zero"}},
			func(nt *attr.Net, layer string, a args) attr.Method {
				return &attr.LayerGradCam{Net: nt, Layer: layer, ReluAttributions: a.relu}
			}),
		"GuidedGradCam": layered("guided backpropagation times the Grad-CAM map of a layer (default: the last convolution)", func(nt *attr.Net, layer string) attr.Method {
			return &attr.GuidedGradCam{Net: nt, Layer: layer}
		}),
		"LayerGradientXActivation": layered("a layer's activations times their gradients", func(nt *attr.Net, layer string) attr.Method {
			return &attr.LayerGradientXActivation{Net: nt, Layer: layer}
		}),
		"LayerDeepLift": layered("DeepLift contributions of a layer's neurons", func(nt *attr.Net, layer string) attr.Method {
			return &attr.LayerDeepLift{Net: nt, Layer: layer}
		}),
		"InternalInfluence": simple("gradients of a layer integrated along the path from the baseline", true, pathParams, func(nt *attr.Net, layer string, a args) attr.Method {
			return &attr.InternalInfluence{Net: nt, Layer: layer, NSteps: a.steps, Method: a.method, InternalBatchSize: a.ibs}
		}),
		"NeuronGradient": neuronMethod("gradient of one neuron of a layer", nil, func(nt *attr.Net, nr attr.Neuron, _ Values) (attr.Method, error) {
			return &attr.NeuronGradient{Net: nt, Neuron: nr}, nil
		}),
		"NeuronGuidedBackprop": neuronMethod("guided backpropagation from one neuron", nil, func(nt *attr.Net, nr attr.Neuron, _ Values) (attr.Method, error) {
			return &attr.NeuronGuidedBackprop{Net: nt, Neuron: nr}, nil
		}),
		"NeuronDeconvolution": neuronMethod("deconvolution from one neuron", nil, func(nt *attr.Net, nr attr.Neuron, _ Values) (attr.Method, error) {
			return &attr.NeuronDeconvolution{Net: nt, Neuron: nr}, nil
		}),
		"NeuronDeepLift": neuronMethod("DeepLift contributions to one neuron", nil, func(nt *attr.Net, nr attr.Neuron, _ Values) (attr.Method, error) {
			return &attr.NeuronDeepLift{Net: nt, Neuron: nr}, nil
		}),
		"NeuronIntegratedGradients": neuronMethod("integrated gradients of one neuron", pathParams, func(nt *attr.Net, nr attr.Neuron, p Values) (attr.Method, error) {
			a, err := argsOf(p)
			return &attr.NeuronIntegratedGradients{Net: nt, Neuron: nr, NSteps: a.steps, Method: a.method, InternalBatchSize: a.ibs}, err
		}),
		"NeuronConductance": neuronMethod("conductance of the inputs through one neuron", pathParams, func(nt *attr.Net, nr attr.Neuron, p Values) (attr.Method, error) {
			a, err := argsOf(p)
			return &attr.NeuronConductance{Net: nt, Neuron: nr, NSteps: a.steps, Method: a.method, InternalBatchSize: a.ibs}, err
		}),
		"NeuronDeepLiftShap": distribution(neuronMethod("NeuronDeepLift averaged over a distribution of baselines", nil, func(nt *attr.Net, nr attr.Neuron, _ Values) (attr.Method, error) {
			return &attr.NeuronDeepLiftShap{Net: nt, Neuron: nr}, nil
		})),
		"NeuronGradientShap": distribution(neuronMethod("expected gradients of one neuron from baseline samples", shapParams, func(nt *attr.Net, nr attr.Neuron, p Values) (attr.Method, error) {
			a, err := argsOf(p)
			return &attr.NeuronGradientShap{Net: nt, Neuron: nr, NSamples: a.n, Stdevs: []float64{a.stdevs}, Seed: a.seed}, err
		})),
		"NeuronFeatureAblation": neuronMethod("change of one neuron when each input feature is set to the baseline", []Param{maskParam, gridParam, ppeParam},
			func(nt *attr.Net, nr attr.Neuron, p Values) (attr.Method, error) {
				return perturbed(p, func(mask []*tensor.Tensor, a args) attr.Method {
					return &attr.NeuronFeatureAblation{Net: nt, Neuron: nr, FeatureMask: mask, PerturbationsPerEval: a.ppe}
				})
			}),
		"LayerFeatureAblation": simple("change of the target when each neuron of a layer is set to zero", true,
			[]Param{{"perturbations_per_eval", "0", "copies per model call (0: chosen from the layer size)"}},
			func(nt *attr.Net, layer string, a args) attr.Method {
				return &attr.LayerFeatureAblation{Net: nt, Layer: layer, PerturbationsPerEval: a.ppe}
			}),
		"LayerActivation": layered("a layer's activations", func(nt *attr.Net, layer string) attr.Method {
			return &attr.LayerActivation{Net: nt, Layer: layer}
		}),
		"LayerConductance": simple("conductance of a layer's neurons", true, pathParams, func(nt *attr.Net, layer string, a args) attr.Method {
			return &attr.LayerConductance{Net: nt, Layer: layer, NSteps: a.steps, Method: a.method, InternalBatchSize: a.ibs}
		}),
		"LayerIntegratedGradients": simple("integrated gradients over a layer's values", true, pathParams, func(nt *attr.Net, layer string, a args) attr.Method {
			return &attr.LayerIntegratedGradients{Net: nt, Layer: layer, NSteps: a.steps, Method: a.method, InternalBatchSize: a.ibs}
		}),
		"GradCAM": camSpec("pytorch-grad-cam's Grad-CAM: channels weighted by the mean gradient", true, false, func(nt *attr.Net, l []string, c camArgs) attr.Method {
			return &attr.GradCAM{Net: nt, Layers: l, EigenSmooth: c.smooth}
		}),
		"HiResCAM": camSpec("gradient times activations summed over channels (pytorch-grad-cam)", true, false, func(nt *attr.Net, l []string, c camArgs) attr.Method {
			return &attr.HiResCAM{Net: nt, Layers: l, EigenSmooth: c.smooth}
		}),
		"GradCAMElementWise": camSpec("positive part of gradient times activations, summed over channels (pytorch-grad-cam)", true, false, func(nt *attr.Net, l []string, c camArgs) attr.Method {
			return &attr.GradCAMElementWise{Net: nt, Layers: l, EigenSmooth: c.smooth}
		}),
		"GradCAMPlusPlus": camSpec("Grad-CAM++: channels weighted by positive gradients with higher-order terms (pytorch-grad-cam)", true, false, func(nt *attr.Net, l []string, c camArgs) attr.Method {
			return &attr.GradCAMPlusPlus{Net: nt, Layers: l, EigenSmooth: c.smooth}
		}),
		"XGradCAM": camSpec("XGrad-CAM: channels weighted by gradient times normalised activations (pytorch-grad-cam)", true, false, func(nt *attr.Net, l []string, c camArgs) attr.Method {
			return &attr.XGradCAM{Net: nt, Layers: l, EigenSmooth: c.smooth}
		}),
		"LayerCAM": camSpec("LayerCAM: activations weighted by their positive gradients (pytorch-grad-cam)", true, false, func(nt *attr.Net, l []string, c camArgs) attr.Method {
			return &attr.LayerCAM{Net: nt, Layers: l, EigenSmooth: c.smooth}
		}),
		"EigenCAM": camSpec("Eigen-CAM: first principal component of the activations (no gradients, ignores the target; pytorch-grad-cam)", false, false, func(nt *attr.Net, l []string, _ camArgs) attr.Method {
			return &attr.EigenCAM{Net: nt, Layers: l}
		}),
		"EigenGradCAM": camSpec("first principal component of gradient times activations (pytorch-grad-cam)", false, false, func(nt *attr.Net, l []string, _ camArgs) attr.Method {
			return &attr.EigenGradCAM{Net: nt, Layers: l}
		}),
		"ScoreCAM": camSpec("Score-CAM: channels weighted by the softmax of the scores of the input masked by each channel (pytorch-grad-cam; 1 + channels model rows per example)", true, true, func(nt *attr.Net, l []string, c camArgs) attr.Method {
			return &attr.ScoreCAM{Net: nt, Layers: l, EigenSmooth: c.smooth, BatchSize: c.batch}
		}),
		"AblationCAM": withParams(camSpec("Ablation-CAM: channels weighted by the target's relative drop when each is set to zero (pytorch-grad-cam; 1 + channels model rows per example)", true, true, func(nt *attr.Net, l []string, c camArgs) attr.Method {
			return &attr.AblationCAM{Net: nt, Layers: l, EigenSmooth: c.smooth, BatchSize: c.batch, RatioChannelsToAblate: c.ratio}
		}), Param{"ratio_channels_to_ablate", "1", "share of the channels ablated, chosen by their overlap with the first principal component (pytorch-grad-cam's experimental option; 1: all)"}),
		"FullGrad": {Doc: "FullGrad: input-gradient and bias-gradient maps of every convolution and batch norm, summed (pytorch-grad-cam)",
			Params: []Param{augSmoothParam},
			Build: func(nt *attr.Net, _ string, p Values) (attr.Method, error) {
				var aug bool
				if err := p.read(arg{"aug_smooth", &aug}); err != nil {
					return nil, err
				}
				return camView{augmented(&attr.FullGrad{Net: nt}, aug)}, nil
			}},
	}
}

// buildLRP builds LRP with a rule for the convolutions, one for the dense
// layers and one for the other layers.
func buildLRP(nt *attr.Net, _ string, p Values) (attr.Method, error) {
	var eps, gamma float64
	if err := p.read(arg{"epsilon", &eps}, arg{"gamma", &gamma}); err != nil {
		return nil, err
	}
	kinds := map[string]attr.LRPRuleKind{"epsilon": attr.Epsilon, "gamma": attr.Gamma, "alpha1beta0": attr.Alpha1Beta0, "identity": attr.Identity}
	rules := map[string]*attr.LRPRule{}
	for _, k := range []string{"conv_rule", "linear_rule", "other_rule"} {
		kind, ok := kinds[p[k]]
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
}

// innerNames are the methods NoiseTunnel averages, as its inner parameter
// names them.
const innerNames = "Saliency, InputXGradient, IntegratedGradients, GuidedBackprop, Deconvolution or DeepLift"

// buildNoiseTunnel builds NoiseTunnel around its inner method.
func buildNoiseTunnel(nt *attr.Net, _ string, p Values) (attr.Method, error) {
	inner, ok := map[string]func() attr.Method{
		"Saliency":            func() attr.Method { return &attr.Saliency{Net: nt} },
		"InputXGradient":      func() attr.Method { return &attr.InputXGradient{Net: nt} },
		"IntegratedGradients": func() attr.Method { return &attr.IntegratedGradients{Net: nt} },
		"GuidedBackprop":      func() attr.Method { return &attr.GuidedBackprop{Net: nt} },
		"Deconvolution":       func() attr.Method { return &attr.Deconvolution{Net: nt} },
		"DeepLift":            func() attr.Method { return &attr.DeepLift{Net: nt} },
	}[p["inner"]]
	if !ok {
		return nil, fmt.Errorf("parameter inner=%q: want %s", p["inner"], innerNames)
	}
	m := &attr.NoiseTunnel{Method: inner(), Type: p["nt_type"], Stdevs: []float64{0}}
	return m, p.read(arg{"nt_samples", &m.NSamples}, arg{"stdevs", &m.Stdevs[0]}, arg{"seed", &m.Seed})
}

// buildOcclusion builds Occlusion with the window and strides given, or
// the window chosen from each input's shape (auto).
func buildOcclusion(nt *attr.Net, _ string, p Values) (attr.Method, error) {
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
}

// camArgs are the parameters of the CAM methods.
type camArgs struct {
	smooth bool    // eigen_smooth
	batch  int     // batch_size
	ratio  float64 // ratio_channels_to_ablate (AblationCAM)
}

// camSpec is a CAM method of pytorch-grad-cam: its layer parameter takes
// target layers separated by commas (none: the last convolution), and
// eigen_smooth when smooth, batch_size when batched, and aug_smooth
// (attr.AugSmooth: six flipped and scaled copies averaged). Its map is returned
// as [N, 1, H, W], one channel the size of the input, so that figures draw
// it over the picture.
func camSpec(doc string, smooth, batched bool, build func(nt *attr.Net, layers []string, c camArgs) attr.Method) Spec {
	var params []Param
	if smooth {
		params = append(params, Param{"eigen_smooth", "false", "project the weighted activations on their first principal component instead of summing them"})
	}
	if batched {
		params = append(params, Param{"batch_size", "0", "masked copies per model call (0: pytorch-grad-cam's default)"})
	}
	params = append(params, augSmoothParam)
	return Spec{Doc: doc + "; layers separated by commas are averaged (default: the last convolution)", Layer: true, Params: params,
		Build: func(nt *attr.Net, layer string, p Values) (attr.Method, error) {
			var c camArgs
			var aug bool
			if err := p.read(arg{"eigen_smooth", &c.smooth}, arg{"batch_size", &c.batch}, arg{"ratio_channels_to_ablate", &c.ratio}, arg{"aug_smooth", &aug}); err != nil {
				return nil, err
			}
			var layers []string
			for _, l := range strings.Split(layer, ",") {
				if l = strings.TrimSpace(l); l != "" {
					layers = append(layers, l)
				}
			}
			return camView{augmented(build(nt, layers, c), aug)}, nil
		}}
}

// augSmoothParam is pytorch-grad-cam's aug_smooth, which every CAM method
// takes.
var augSmoothParam = Param{"aug_smooth", "false", "average the maps of six copies of the image (flipped or not, times 0.9, 1, 1.1), flipped back (attr.AugSmooth; 6 times the cost; not for targets tied to a position, such as a detector's box)"}

// augmented wraps a CAM method in attr.AugSmooth when aug is set.
func augmented(m attr.Method, aug bool) attr.Method {
	if aug {
		return &attr.AugSmooth{CAM: m}
	}
	return m
}

// withParams adds parameters to a method's.
func withParams(s Spec, ps ...Param) Spec {
	s.Params = append(append([]Param(nil), s.Params...), ps...)
	return s
}

// camView returns a CAM method's map [N, H, W] as [N, 1, H, W].
type camView struct{ attr.Method }

func (v camView) Attribute(ctx context.Context, inputs []*tensor.Tensor, o attr.Options) (*attr.Result, error) {
	r, err := v.Method.Attribute(ctx, inputs, o)
	if err != nil {
		return nil, err
	}
	if a := r.Attributions[0]; a.Rank() == 3 {
		if r.Attributions[0], err = a.Reshape(a.Shape[0], 1, a.Shape[1], a.Shape[2]); err != nil {
			return nil, err
		}
	}
	return r, nil
}
