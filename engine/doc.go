// Package engine runs ONNX models for attribution: forward passes on
// batches, the values of any intermediate tensor (taps), the replacement of
// any tensor by a caller's value (injection), and reverse-mode gradients with
// respect to inputs and named tensors, with backward rules per op that the
// caller may swap for one call (guided backprop, DeepLift, LRP) without
// changing the model.
//
// A Model is compiled once (Load or Compile): every node's kernel is built
// and its attributes checked then, ops that loupe does not support are all
// reported together with their node names, and subgraphs of constants are
// evaluated once. A Model is immutable and safe for concurrent use; each
// Forward returns a Pass that holds the values of that evaluation.
//
// A pass that does not record (no Backward to follow) runs each chain
// Conv -> BatchNormalization [-> Relu] as one convolution with the
// normalization folded into its weights, and Add -> Relu as one addition,
// when it neither asks for, taps nor injects a tensor inside the chain:
// less memory traffic, outputs equal to float32 rounding. A recorded pass
// does so only with Options.Fuse, for the chains its backward rules
// (Options.Rules) leave alone.
//
// Passes reuse memory: the values a pass no longer needs go back to the
// model for later passes (as they die, in a pass that does not record; at
// Pass.Release for a recorded one). What a caller was given (outputs,
// taps, gradients) is never reused.
//
//	m, err := engine.Load("model.onnx")
//	p, err := m.Forward(ctx, map[string]*tensor.Tensor{"input": x},
//		&engine.Options{Record: true, Taps: []string{"/layer4/layer4.1/relu2/Relu_output_0"}})
//	y, err := p.Output(0)
//	g, err := p.Backward(ctx, map[string]*tensor.Tensor{"output": seed}, []string{"input"}, nil)
//	p.Release()
//
// The op kernels live in internal packages: internal/op defines what a
// kernel is (and the helpers kernels read their arguments with),
// internal/ops/mathops, nnops and shapeops hold the kernels, and
// internal/kernels the GEMM and convolutions they call; loupe's
// internal/par holds the parallel loops they run on. Supported reports
// which op types the engine has a kernel for.
package engine
