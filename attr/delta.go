package attr

import (
	"context"

	"github.com/loupe-ml/loupe/tensor"
)

// convergenceDelta returns, per example, the sum of the attributions over
// all inputs minus (F(x) - F(b)) at the target.
func convergenceDelta(ctx context.Context, nt *Net, inputs, base, attrs []*tensor.Tensor, a Options) (*tensor.Tensor, error) {
	n := inputs[0].Shape[0]
	fx, err := targetValues(ctx, nt, inputs, a, n)
	if err != nil {
		return nil, err
	}
	fb, err := targetValues(ctx, nt, base, a, n)
	if err != nil {
		return nil, err
	}
	d := tensor.New(n)
	for r := 0; r < n; r++ {
		d.F[r] = rowSum(attrs, r, n) - (fx[r] - fb[r])
	}
	return d, nil
}

// layerDelta returns sum(layer attributions) - (F(x) - F(b)) per example.
func layerDelta(ctx context.Context, nt *Net, inputs, base []*tensor.Tensor, attr *tensor.Tensor, o Options) (*tensor.Tensor, error) {
	n := inputs[0].Shape[0]
	fx, err := targetValues(ctx, nt, inputs, o, n)
	if err != nil {
		return nil, err
	}
	fb, err := targetValues(ctx, nt, base, o, n)
	if err != nil {
		return nil, err
	}
	d := tensor.New(n)
	for r := 0; r < n; r++ {
		d.F[r] = rowSum([]*tensor.Tensor{attr}, r, n) - (fx[r] - fb[r])
	}
	return d, nil
}

// targetValues evaluates the net on a batch and returns the target output
// of each row.
func targetValues(ctx context.Context, nt *Net, inputs []*tensor.Tensor, a Options, n int) ([]float32, error) {
	feeds, err := nt.feeds(inputs, a.Additional, n, 1, false)
	if err != nil {
		return nil, err
	}
	out, err := nt.eval(ctx, feeds)
	if err != nil {
		return nil, err
	}
	return a.Target.pick(out)
}
