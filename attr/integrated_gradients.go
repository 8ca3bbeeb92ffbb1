package attr

import (
	"cmp"
	"context"
	"fmt"

	"github.com/loupe-ml/loupe/tensor"
)

// IntegratedGradients attributes by integrating the gradient along the
// straight path from a baseline to the input (Sundararajan, Taly and Yan,
// "Axiomatic Attribution for Deep Networks", ICML 2017):
//
//	attr_i = (x_i - b_i) * integral_0^1 dF(b + a(x-b))/dx_i da
//
// The integral is approximated with NSteps points of Method. The
// attributions of an example sum to F(x) - F(b) up to the approximation
// error, which the convergence delta measures. Cost: NSteps forward and
// backward rows per example (plus 2 forward rows for the delta), in batches
// of at most InternalBatchSize rows.
type IntegratedGradients struct {
	Net *Net
	// Method is the integration rule; "" means GaussLegendre, Captum's default.
	Method string
	// NSteps is the number of points; 0 means 50, at most MaxSteps
	// (InternalBatchSize at most MaxBatch).
	NSteps int
	// InternalBatchSize bounds the rows per engine call; 0 chooses calls of
	// about 1M input elements (Captum's None runs all steps at once; the
	// results are the same, large batches are only slower).
	InternalBatchSize int
	// Local returns local attributions, not multiplied by (inputs - baselines):
	// Captum's multiply_by_inputs=False.
	Local bool
}

// Attribute computes the attributions of inputs with respect to a.Target,
// from a.Baselines (nil: zeros). With a.Delta, it also returns the convergence
// delta per example: sum(attributions) - (F(x) - F(b)).
func (ig *IntegratedGradients) Attribute(ctx context.Context, inputs []*tensor.Tensor, a Options) (*Result, error) {
	p, err := newPath(ctx, "IntegratedGradients", inputs, a, ig.Method, cmp.Or(ig.NSteps, defaultNSteps), ig.InternalBatchSize)
	if err != nil {
		return nil, err
	}
	if err := floatInputs(inputs, "IntegratedGradients"); err != nil {
		return nil, fmt.Errorf("%w (use LayerIntegratedGradients on an embedding for token ids)", err)
	}
	total := zerosLike(inputs, false)
	err = p.walk(ctx, ig.Net, inputs, p.along(inputs), a, func(s0, k int, feeds map[string]*tensor.Tensor) error {
		_, grads, err := ig.Net.gradOf(ctx, feeds, a.Target.expand(p.n, k, false), nil)
		if err != nil {
			return err
		}
		for i, g := range grads {
			addWeighted(total[i].F, g.F, p.steps[s0:s0+k])
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !ig.Local {
		multiplyByInputs(total, inputs, p.base)
	}
	res := &Result{Attributions: total}
	if a.Delta {
		if res.Delta, err = convergenceDelta(ctx, ig.Net, inputs, p.base, total, a); err != nil {
			return nil, err
		}
	}
	return res, nil
}
