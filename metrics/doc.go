// Package metrics measures explanations, as Captum's captum.metrics does and
// with the checks of the attribution literature. Each metric is a function
// of a model (or a method) and of attributions already computed; the cost
// is counted in forward rows (one example through the model) or in
// explanations (one call of the method on the batch):
//
//   - Infidelity: how well the attributions predict the change of the
//     output under a perturbation of the input (Yeh et al., "On the
//     (In)fidelity and Sensitivity of Explanations", NeurIPS 2019).
//     Cost: NPerturbSamples+1 forward rows per example.
//   - SensitivityMax: how much the explanation changes under small
//     perturbations of the input (Yeh et al., NeurIPS 2019). Cost:
//     NPerturbSamples+1 explanations per example.
//   - ShareInMask: the share of the positive attribution inside a mask of
//     the object, the relevance mass accuracy of Arras, Osman and Samek
//     ("CLEVR-XAI", Information Fusion 2022). Cost: no model evaluation.
//   - PointingGame: whether the largest attribution lies inside the mask
//     (Zhang et al., "Top-down Neural Attention by Excitation Backprop",
//     ECCV 2016). Cost: no model evaluation.
//   - DeletionCurves: the output as features are removed (or inserted) in
//     order of attribution, and the area under that curve (Petsiuk, Das and
//     Saenko, "RISE", BMVC 2018). Cost: steps+1 forward rows per example.
//   - ModelRandomization: how much the explanation changes as the model's
//     weights are randomized layer by layer (Adebayo et al., "Sanity Checks
//     for Saliency Maps", NeurIPS 2018). Cost: one explanation of the batch
//     per layer with weights, plus one.
//
// Infidelity and SensitivityMax draw their perturbations through a
// Perturbation (GaussianNoise, UniformBall, or one's own through
// FromPerturbed) and share Options: the number of samples, the rows
// evaluated at once, the seed and progress.
package metrics
