// Package influence finds the training examples that most influenced a
// model's predictions, as Captum's captum.influence module does, with
// Captum's names, parameters and defaults:
//
//   - TracInCP (Pruthi et al., "Estimating Training Data Influence by
//     Tracing Gradient Descent", NeurIPS 2020): the influence of a training
//     example on a test example is the sum over checkpoints of the learning
//     rate times the dot product of their loss gradients with respect to
//     the weights; self-influence is a training example's influence on
//     itself.
//   - TracInCPFast: TracInCP restricted to the weight of the final fully
//     connected layer, computed from its input and output gradient alone.
//   - SimilarityInfluence: the training examples whose activations at
//     named layers are closest (cosine or Euclidean) to a test example's.
//
// Checkpoints are ONNX files, one per checkpoint, each with its learning
// rate; training data are tensors (or a folder of .npy files, see
// LoadDataset).
package influence
