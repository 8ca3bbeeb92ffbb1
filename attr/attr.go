package attr

import (
	"context"
	"fmt"

	"github.com/loupe-ml/loupe/tensor"
)

// Method is any attribution method: it attributes a batch of inputs, for
// the target and from the baselines in o.
type Method interface {
	Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error)
}

// Model is the smallest thing perturbation methods need: a function from a
// batch of inputs to a batch of outputs. The attributed inputs come first,
// in order, then the additional ones (Options.Additional). The output's
// first dimension is the batch, or the output is a single number for the
// whole batch. A Func is a Model, and so is a *Net (see Net.Eval).
type Model interface {
	Eval(ctx context.Context, inputs []*tensor.Tensor) (*tensor.Tensor, error)
}

// Func is a Model written as a Go function: a remote service, a tree
// ensemble, anything that maps a batch to outputs. It must be safe to call
// from several goroutines at once when Options.Workers is above 1.
type Func func(ctx context.Context, inputs []*tensor.Tensor) (*tensor.Tensor, error)

// Eval calls f.
func (f Func) Eval(ctx context.Context, inputs []*tensor.Tensor) (*tensor.Tensor, error) {
	return f(ctx, inputs)
}

// Options holds what every attribution method takes besides its inputs,
// under Captum's names. A method ignores the fields it has no use for.
type Options struct {
	// Target is the output explained; see Class, Classes, Index.
	Target Target
	// Baselines holds one reference per input (nil: zeros). For most
	// methods a baseline is a scalar (shape []), one row (shape [1, ...]) or
	// the input's shape; for GradientShap and DeepLiftShap its rows are
	// samples of a distribution.
	Baselines []*tensor.Tensor
	// Delta asks for the convergence delta of methods that have one.
	Delta bool
	// Additional feeds the Net's Extra inputs (additional_forward_args).
	// Tensors whose first dimension is the batch size are repeated along
	// with the inputs when a method expands the batch.
	Additional []*tensor.Tensor
	// Progress, if set, is called as rows are evaluated: per model call,
	// and for the sampling methods (Lime, KernelShap, ShapleyValueSampling,
	// GradientShap, NoiseTunnel) per evaluated sample.
	Progress Progress
	// Workers is how many model calls perturbation methods (FeatureAblation,
	// Occlusion and their layer and neuron forms) run at once. 0 or 1 runs
	// them one after the other, right for a Net, whose kernels already use
	// every core; a Go function that is safe for concurrent use and runs on
	// one core goes faster with Workers set to the number of cores.
	Workers int
	// MemoryBudget bounds, in bytes, what a method holds at once: its
	// expanded batches (IntegratedGradients' steps, NoiseTunnel's noisy
	// copies, GradientShap's draws, the coalitions of Lime, KernelShap and
	// the Shapley methods, the perturbed copies of Occlusion and the
	// ablation methods, DeepLiftShap's baseline pairs, the copies of
	// ScoreCAM and AblationCAM) are split into model calls that fit, the
	// model's share of a row estimated by a dry run on one example (see
	// DefaultMemoryBudget for 0). What would not fit even split (one
	// step of the whole batch, Lime's design matrix of NSamples rows by the
	// number of features, a least-squares surrogate over too many
	// features) is refused before any model call, with the parameter to
	// change. It counts live data: the process's peak can be up to about
	// twice as much with Go's default garbage collector settings (GOGC=100).
	MemoryBudget int64
}

// Progress reports work done: done of total model rows evaluated so far.
type Progress func(done, total int)

// Result is what an attribution method returns: one attribution tensor per
// input (one for the layer, for layer methods), and the convergence delta
// per row when the method has one and it was asked for (Options.Delta).
type Result struct {
	Attributions []*tensor.Tensor
	Delta        *tensor.Tensor
	// Maps holds, for the CAM methods (GradCAM and kin), each target
	// layer's raw map [N, h, w] at the layer's resolution, before the ReLU
	// and scaling that give the attribution (see ScaleCAM); for FullGrad,
	// the unscaled sum [N, H, W]. Nil for other methods.
	Maps []*tensor.Tensor
}

// errNoNet is returned by methods whose Net (or Model) is nil.
var errNoNet = fmt.Errorf("attr: the method has no Net (or Model) to explain")
