// Package attr computes attributions: how much each input feature of a model
// contributed to an output, with Captum's algorithms, names, parameters and
// defaults, so that the numbers agree with Captum's.
//
// Every algorithm is a Method. Its Attribute takes the attributed inputs, a
// slice of tensors whose first dimension is the batch, and an Options value
// with what Captum's attribute() takes besides: the target, the baselines,
// the additional forward arguments, whether to return the convergence delta,
// and a progress callback. It returns a Result: one attribution per input
// (per layer, for layer methods) and the delta when asked for.
//
// Methods explain one of two kinds of model. Perturbation methods only
// evaluate the model, so they work on any Model: a Go function (Func), a
// remote service, or a Net. Gradient methods differentiate the model, so
// they need a Net: an ONNX model compiled by package engine, with the inputs
// it attributes, its additional inputs and the output it explains.
//
// The methods come in Captum's families:
//
//   - gradient methods, on a Net: Saliency, InputXGradient,
//     IntegratedGradients, GradientShap, DeepLift, DeepLiftShap,
//     GuidedBackprop, Deconvolution and LRP;
//   - perturbation methods, on a Model: FeatureAblation, FeaturePermutation,
//     Occlusion, ShapleyValueSampling, ShapleyValues, Lime, KernelShap and
//     LimeBase;
//   - NoiseTunnel (SmoothGrad, SmoothGrad², VarGrad), around any Method;
//   - layer methods, which attribute to a layer of a Net: LayerActivation,
//     LayerGradientXActivation, LayerIntegratedGradients, LayerConductance,
//     InternalInfluence, LayerGradientShap, LayerDeepLift,
//     LayerDeepLiftShap, LayerFeatureAblation, LayerLRP, LayerGradCam and
//     GuidedGradCam;
//   - neuron methods, which attribute one Neuron of a layer to the inputs:
//     NeuronGradient, NeuronIntegratedGradients, NeuronConductance,
//     NeuronGradientShap, NeuronDeepLift, NeuronDeepLiftShap,
//     NeuronGuidedBackprop, NeuronDeconvolution and NeuronFeatureAblation;
//   - class activation maps with pytorch-grad-cam's semantics and numbers,
//     on a Net: GradCAM, HiResCAM, GradCAMElementWise, GradCAMPlusPlus,
//     XGradCAM, LayerCAM, EigenCAM, EigenGradCAM, ScoreCAM, AblationCAM and
//     FullGrad (scaled as that library does: ScaleCAM).
//
// Each method's documentation gives its paper and its cost in model
// evaluations: a "row" is one example through the network; rows are batched
// into few model calls.
package attr
