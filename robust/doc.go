// Package robust measures how robust a model is to perturbations of its
// inputs, as Captum's captum.robust module does, with Captum's names,
// parameters and defaults:
//
//   - FGSM and PGD, gradient attacks (targeted or not, Linf or L2 balls,
//     bounds, the loss as a parameter: Captum's default NegLog or
//     CrossEntropy);
//   - MinParamPerturbation, the smallest value of an attack's parameter
//     that makes the model misclassify (linear or binary search);
//   - AttackComparator, a metric of the model under a set of attacks and
//     perturbations, per batch and summarized over batches.
//
// Gradient attacks need an *attr.Net (an ONNX model through the engine);
// MinParamPerturbation and AttackComparator need only an attr.Model, so a
// Go function works with them.
package robust
