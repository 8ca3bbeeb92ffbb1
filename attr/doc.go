// Package attr computes attributions: how much each input feature of a model
// contributed to an output, with Captum's algorithms, names, parameters and
// defaults, so that the numbers agree with Captum's.
//
// Gradient methods (Saliency, InputXGradient, IntegratedGradients, ...) run
// on a Net, an ONNX model compiled by package engine. Every method takes the
// attributed inputs as a slice of tensors whose first dimension is the batch,
// and an Args value with what Captum's attribute() takes besides: the target,
// the baselines, additional forward arguments, and a progress callback.
//
// The cost of each method is given in model evaluations: a "row" is one
// example through the network; rows are batched into few engine calls.
package attr
