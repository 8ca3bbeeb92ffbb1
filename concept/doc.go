// Package concept tests a model's sensitivity to human concepts with TCAV
// (Testing with Concept Activation Vectors; Kim et al., "Interpretability
// Beyond Feature Attribution", ICML 2018), Captum's captum.concept module
// with its names, parameters and defaults.
//
// A Concept is a set of examples (a folder of images, a tensor of rows).
// For each experimental set of concepts and each layer, TCAV trains a
// linear classifier (loupe's linear package) on the layer's activations of
// the concepts' examples; its weights are the concept activation vectors
// (CAVs), which can be stored and loaded as Captum stores them. The TCAV
// score of a concept for a class is the share of inputs whose directional
// derivative along the CAV is positive; Significance compares a concept's
// scores with those of random concepts.
package concept
