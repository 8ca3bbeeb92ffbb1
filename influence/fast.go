package influence

import (
	"context"
	"fmt"

	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/robust"
	"github.com/loupe-ml/loupe/tensor"
)

// TracInCPFast is TracInCP restricted to the weight of the final fully
// connected layer (Pruthi et al., NeurIPS 2020, section 3.2), Captum's
// captum.influence.TracInCPFast: score(test, train) = sum_k lr_k *
// <dL/dout(test), dL/dout(train)> * <a(test), a(train)>, where a is the
// layer's input and dL/dout the per-example loss gradient at its output
// (the bias is ignored, as in Captum). Cost per checkpoint: one forward and
// backward pass over each batch of BatchSize examples.
type TracInCPFast struct {
	Checkpoints  []Checkpoint
	TrainDataset Dataset
	// FinalFCLayer is the module of the last fully connected layer ("fc3").
	FinalFCLayer string
	// LossFn is the per-example loss; nil is CrossEntropy. (Captum asks
	// for reduction "sum" or "mean" here and recovers per-example
	// gradients; the result is the same.)
	LossFn     robust.Loss
	TestLossFn robust.Loss
	// BatchSize is how many examples share a pass (default 1).
	BatchSize int
	Progress  func(done, total int)
}

// fcTensors finds the final layer's node: its input and output tensors.
func fcTensors(m *engine.Model, module string) (string, string, error) {
	for _, n := range m.Graph().Nodes {
		if engine.ModulePath(n.Name) == module && (n.OpType == "Gemm" || n.OpType == "MatMul") {
			return n.Inputs[0], n.Outputs[0], nil
		}
	}
	return "", "", fmt.Errorf("influence: the model has no fully connected (Gemm or MatMul) node in module %q", module)
}

// fastFeatures returns, per example, the final layer's input and the loss
// gradient at its output.
func (t *TracInCPFast) fastFeatures(ctx context.Context, m *engine.Model, d Dataset, loss robust.Loss) ([][]float32, [][]float32, error) {
	if loss == nil {
		loss = robust.CrossEntropy
	}
	in, out, err := fcTensors(m, t.FinalFCLayer)
	if err != nil {
		return nil, nil, err
	}
	bs := max(t.BatchSize, 1)
	var acts, gs [][]float32
	for lo := 0; lo < d.Len(); lo += bs {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		hi := min(lo+bs, d.Len())
		b := d.rows(lo, hi)
		p, err := forward(ctx, m, b.Inputs, &engine.Options{Record: true, Taps: []string{in, out}})
		if err != nil {
			return nil, nil, err
		}
		o, err := p.Value(output(m))
		if err != nil {
			return nil, nil, err
		}
		_, seed, err := loss(o, b.Labels)
		if err != nil {
			return nil, nil, fmt.Errorf("influence: loss: %w", err)
		}
		g, err := p.Backward(ctx, map[string]*tensor.Tensor{output(m): seed}, []string{out}, nil)
		if err != nil {
			return nil, nil, err
		}
		a, err := p.Value(in)
		if err != nil {
			return nil, nil, err
		}
		for _, pair := range []struct {
			t   *tensor.Tensor
			dst *[][]float32
		}{{a, &acts}, {g[out], &gs}} {
			n := hi - lo
			row := pair.t.Len() / n
			for i := 0; i < n; i++ {
				*pair.dst = append(*pair.dst, pair.t.AsFloat32().F[i*row:(i+1)*row])
			}
		}
	}
	return acts, gs, nil
}

func (t *TracInCPFast) check() error {
	cp := TracInCP{Checkpoints: t.Checkpoints, TrainDataset: t.TrainDataset}
	if err := cp.check(); err != nil {
		return err
	}
	if t.FinalFCLayer == "" {
		return fmt.Errorf("influence: TracInCPFast needs FinalFCLayer")
	}
	return nil
}

// Influence returns the scores [n_test, n_train].
func (t *TracInCPFast) Influence(ctx context.Context, test Dataset) (*tensor.Tensor, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	if err := test.check("the test set", true); err != nil {
		return nil, err
	}
	nt, nr := test.Len(), t.TrainDataset.Len()
	acc := make([]float64, nt*nr)
	for k, c := range t.Checkpoints {
		tl := t.TestLossFn
		if tl == nil {
			tl = t.LossFn
		}
		at, gt, err := t.fastFeatures(ctx, c.Model, test, tl)
		if err != nil {
			return nil, err
		}
		ar, gr, err := t.fastFeatures(ctx, c.Model, t.TrainDataset, t.LossFn)
		if err != nil {
			return nil, err
		}
		for i := range at {
			for j := range ar {
				acc[i*nr+j] += c.LearningRate * dot(gt[i], gr[j]) * dot(at[i], ar[j])
			}
		}
		if t.Progress != nil {
			t.Progress(k+1, len(t.Checkpoints))
		}
	}
	return matrix(acc, nt, nr), nil
}

// SelfInfluence returns sum_k lr_k * ||dL/dout||^2 * ||a||^2 per training
// example.
func (t *TracInCPFast) SelfInfluence(ctx context.Context) ([]float64, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	out := make([]float64, t.TrainDataset.Len())
	for k, c := range t.Checkpoints {
		ar, gr, err := t.fastFeatures(ctx, c.Model, t.TrainDataset, t.LossFn)
		if err != nil {
			return nil, err
		}
		for j := range ar {
			out[j] += c.LearningRate * dot(gr[j], gr[j]) * dot(ar[j], ar[j])
		}
		if t.Progress != nil {
			t.Progress(k+1, len(t.Checkpoints))
		}
	}
	return out, nil
}
