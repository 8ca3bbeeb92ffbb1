package attr

import (
	"context"

	"github.com/loupe-ml/loupe/tensor"
)

// convergenceDelta returns, per example, the sum of the attributions over
// all inputs (or of a layer's) minus (F(x) - F(b)) at the target, with F
// evaluated on the inputs and on the baselines.
func convergenceDelta(ctx context.Context, nt *Net, inputs, base, attrs []*tensor.Tensor, o Options) (*tensor.Tensor, error) {
	n := inputs[0].Shape[0]
	fx, err := targetValues(ctx, nt, inputs, o, n)
	if err != nil {
		return nil, err
	}
	fb, err := targetValues(ctx, nt, base, o, n)
	if err != nil {
		return nil, err
	}
	return sumDelta(attrs, n, fx, fb), nil
}

// pairDelta is the convergence delta of a method that ran the inputs and
// their baselines in one batch of 2n rows (DeepLift): F(x) and F(b) are the
// two halves of its output.
func pairDelta(out *tensor.Tensor, t Target, attrs []*tensor.Tensor, n int) (*tensor.Tensor, error) {
	vals, err := t.expand(n, 2, false).pick(out)
	if err != nil {
		return nil, err
	}
	return sumDelta(attrs, n, vals[:n], vals[n:]), nil
}

// sumDelta returns sum(attributions of example r) - (fx[r] - fb[r]) for
// each of n examples.
func sumDelta(attrs []*tensor.Tensor, n int, fx, fb []float32) *tensor.Tensor {
	d := tensor.New(n)
	for r := 0; r < n; r++ {
		d.F[r] = rowSum(attrs, r, n) - (fx[r] - fb[r])
	}
	return d
}

// relevanceDelta is LRP's delta: per example, the target output minus the
// sum of the relevances.
func relevanceDelta(out []float32, rel []*tensor.Tensor, n int) *tensor.Tensor {
	d := tensor.New(n)
	for r := 0; r < n; r++ {
		d.F[r] = out[r] - rowSum(rel, r, n)
	}
	return d
}

// targetValues evaluates the net on a batch and returns the target output
// of each row.
func targetValues(ctx context.Context, nt *Net, inputs []*tensor.Tensor, o Options, n int) ([]float32, error) {
	feeds, err := nt.feeds(inputs, o.Additional, n, 1, false)
	if err != nil {
		return nil, err
	}
	out, err := nt.eval(ctx, feeds)
	if err != nil {
		return nil, err
	}
	return o.Target.pick(out)
}
