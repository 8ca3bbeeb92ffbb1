package attr

import (
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
	// NSteps is the number of points; 0 means 50.
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
	n, err := batchOf(inputs)
	if err != nil {
		return nil, err
	}
	nsteps := ig.NSteps
	if nsteps == 0 {
		nsteps = 50
	}
	steps, alphas, err := stepsAndAlphas(ig.Method, nsteps)
	if err != nil {
		return nil, err
	}
	base, err := baselinesFor(a.Baselines, inputs)
	if err != nil {
		return nil, err
	}
	for i, x := range inputs {
		if x.DType != tensor.Float32 {
			return nil, fmt.Errorf("attr: input %d is %s; integrated gradients needs float inputs (use LayerIntegratedGradients on an embedding for token ids)", i, x.DType)
		}
	}
	total := make([]*tensor.Tensor, len(inputs))
	for i, x := range inputs {
		total[i] = tensor.New(x.Shape...)
	}
	// Steps per engine call.
	per := stepsPerCall(ig.InternalBatchSize, n, nsteps, inputs)
	done := 0
	for s0 := 0; s0 < nsteps; s0 += per {
		s1 := min(nsteps, s0+per)
		k := s1 - s0
		scaled := make([]*tensor.Tensor, len(inputs))
		for i, x := range inputs {
			scaled[i] = interpolate(base[i], x, alphas[s0:s1])
		}
		feeds, err := ig.Net.feeds(scaled, a.Additional, n, k, false)
		if err != nil {
			return nil, err
		}
		_, grads, err := ig.Net.gradOf(ctx, feeds, a.Target.expand(n, k, false), nil)
		if err != nil {
			return nil, err
		}
		for i, g := range grads {
			row := inputs[i].Len()
			for s := 0; s < k; s++ {
				w := float32(steps[s0+s])
				src := g.F[s*row : (s+1)*row]
				dst := total[i].F
				for e, v := range src {
					dst[e] += v * w
				}
			}
		}
		done += k * n
		if a.Progress != nil {
			a.Progress(done, nsteps*n)
		}
	}
	res := &Result{Attributions: total}
	if !ig.Local {
		for i, x := range inputs {
			for e := range total[i].F {
				total[i].F[e] *= x.F[e] - base[i].F[e]
			}
		}
	}
	if a.Delta {
		d, err := convergenceDelta(ctx, ig.Net, inputs, base, res.Attributions, a)
		if err != nil {
			return nil, err
		}
		res.Delta = d
	}
	return res, nil
}
