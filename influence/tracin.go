package influence

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/robust"
	"github.com/loupe-ml/loupe/tensor"
)

// TracInCP is TracIn with checkpoints (Pruthi et al., NeurIPS 2020),
// Captum's captum.influence.TracInCP: score(test, train) = sum_k lr_k *
// <grad_theta L(test; theta_k), grad_theta L(train; theta_k)>, theta the
// weights of Layers (every trainable weight when Layers is nil), L the
// per-example loss. Cost per checkpoint: one forward and backward row per
// test and per training example (one pass per batch when all the weights
// are fully connected layers', else one pass per example).
type TracInCP struct {
	Checkpoints []Checkpoint
	// TrainDataset holds the training examples and their labels.
	TrainDataset Dataset
	// Layers are the modules whose weights and biases are used ("conv2",
	// "fc"); nil means every trainable weight (model.parameters()).
	Layers []string
	// LossFn is the per-example loss; nil is CrossEntropy on the logits
	// (torch.nn.CrossEntropyLoss(reduction="none")).
	LossFn robust.Loss
	// TestLossFn is the loss of the test examples; nil is LossFn.
	TestLossFn robust.Loss
	// BatchSize is how many examples share a forward and backward pass
	// (Captum's batch_size; default 1). Per-example gradients come from one
	// pass per batch when every weight used belongs to a fully connected
	// (Gemm) layer, and from one pass per example otherwise; the scores are
	// the same either way.
	BatchSize int
	// Progress, if set, is called after each checkpoint.
	Progress func(done, total int)
}

// Params returns the names of the weights TracInCP differentiates at a
// checkpoint model.
func (t *TracInCP) Params(m *engine.Model) ([]string, error) {
	return Params(m, t.Layers)
}

// Params returns the trainable weights of the named modules of m (their
// float initializers read by the modules' nodes), or, for nil modules, of
// the whole model. BatchNormalization's running mean and variance are
// buffers, not weights.
func Params(m *engine.Model, modules []string) ([]string, error) {
	g := m.Graph()
	seen := map[string]bool{}
	var out []string
	found := map[string]bool{}
	for _, n := range g.Nodes {
		mod := engine.ModulePath(n.Name)
		if modules != nil && !slices.Contains(modules, mod) {
			continue
		}
		found[mod] = true
		for i, in := range n.Inputs {
			t, ok := g.Initializers[in]
			if !ok || seen[in] || t.DType != tensor.Float32 {
				continue
			}
			if n.OpType == "BatchNormalization" && i >= 3 {
				continue
			}
			if n.OpType != "Gemm" && n.OpType != "Conv" && n.OpType != "MatMul" && n.OpType != "BatchNormalization" &&
				n.OpType != "Add" && n.OpType != "Mul" && n.OpType != "ConvTranspose" && n.OpType != "Gather" &&
				n.OpType != "LayerNormalization" && n.OpType != "InstanceNormalization" {
				continue
			}
			seen[in] = true
			out = append(out, in)
		}
	}
	for _, mod := range modules {
		if !found[mod] {
			return nil, fmt.Errorf("influence: the model has no module %q (modules: %v)", mod, m.Modules())
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("influence: no trainable weights in modules %v", modules)
	}
	sort.Strings(out)
	return out, nil
}

// check checks the checkpoints and the training set.
func (t *TracInCP) check() error {
	if len(t.Checkpoints) == 0 {
		return fmt.Errorf("influence: no checkpoints")
	}
	for i, c := range t.Checkpoints {
		if c.Model == nil {
			return fmt.Errorf("influence: checkpoint %d has no model", i)
		}
	}
	return t.TrainDataset.check("the training set", true)
}

// grads returns, at a checkpoint, the flattened loss gradient of each
// example with respect to the weights: batch by batch when every weight
// belongs to a fully connected layer (gemmParams), else one pass per
// example.
func grads(ctx context.Context, m *engine.Model, params []string, d Dataset, loss robust.Loss, batch int) ([][]float32, error) {
	if loss == nil {
		loss = robust.CrossEntropy
	}
	if batch > 1 {
		if gp := gemmParams(m, params); gp != nil {
			return gemmGrads(ctx, m, gp, d, loss, batch)
		}
	}
	n := d.Len()
	out := make([][]float32, n)
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ex := d.rows(i, i+1)
		p, err := forward(ctx, m, ex.Inputs, &engine.Options{Record: true})
		if err != nil {
			return nil, err
		}
		o, err := p.Value(output(m))
		if err != nil {
			return nil, err
		}
		_, seed, err := loss(o, ex.Labels)
		if err != nil {
			return nil, fmt.Errorf("influence: loss of example %d: %w", i, err)
		}
		g, err := p.Backward(ctx, map[string]*tensor.Tensor{output(m): seed}, params, nil)
		if err != nil {
			return nil, fmt.Errorf("influence: weight gradients of example %d: %w", i, err)
		}
		var flat []float32
		for _, name := range params {
			flat = append(flat, g[name].F...)
		}
		out[i] = flat
	}
	return out, nil
}

func dot(a, b []float32) float64 {
	s := 0.0
	for i, v := range a {
		s += float64(v) * float64(b[i])
	}
	return s
}

// Influence returns the scores [n_test, n_train] of the test examples
// (inputs with their labels) against the training set (Captum's influence
// with k=None).
func (t *TracInCP) Influence(ctx context.Context, test Dataset) (*tensor.Tensor, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	if err := test.check("the test set", true); err != nil {
		return nil, err
	}
	nt, nr := test.Len(), t.TrainDataset.Len()
	acc := make([]float64, nt*nr)
	for k, c := range t.Checkpoints {
		params, err := t.Params(c.Model)
		if err != nil {
			return nil, err
		}
		tl := t.TestLossFn
		if tl == nil {
			tl = t.LossFn
		}
		gt, err := grads(ctx, c.Model, params, test, tl, t.BatchSize)
		if err != nil {
			return nil, err
		}
		gr, err := grads(ctx, c.Model, params, t.TrainDataset, t.LossFn, t.BatchSize)
		if err != nil {
			return nil, err
		}
		for i := range gt {
			for j := range gr {
				acc[i*nr+j] += c.LearningRate * dot(gt[i], gr[j])
			}
		}
		if t.Progress != nil {
			t.Progress(k+1, len(t.Checkpoints))
		}
	}
	return matrix(acc, nt, nr), nil
}

// SelfInfluence returns each training example's influence on itself,
// sum_k lr_k * ||grad L(train; theta_k)||^2 (Captum's self_influence).
func (t *TracInCP) SelfInfluence(ctx context.Context) ([]float64, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	out := make([]float64, t.TrainDataset.Len())
	for k, c := range t.Checkpoints {
		params, err := t.Params(c.Model)
		if err != nil {
			return nil, err
		}
		gr, err := grads(ctx, c.Model, params, t.TrainDataset, t.LossFn, t.BatchSize)
		if err != nil {
			return nil, err
		}
		for j, g := range gr {
			out[j] += c.LearningRate * dot(g, g)
		}
		if t.Progress != nil {
			t.Progress(k+1, len(t.Checkpoints))
		}
	}
	return out, nil
}

// matrix makes a float32 [r, c] tensor of float64 values.
func matrix(v []float64, r, c int) *tensor.Tensor {
	t := tensor.New(r, c)
	for i, x := range v {
		t.F[i] = float32(x)
	}
	return t
}

// TopK holds, per test example, the k training examples of largest (or
// smallest) score, best first: their indices and scores.
type TopK struct {
	Indices [][]int
	Values  [][]float64
}

// KMostInfluential picks from scores [n_test, n_train] the k largest
// (proponents) or smallest (opponents) per row, best first; ties keep the
// lower index first. It is Captum's influence(inputs, k, proponents).
func KMostInfluential(scores *tensor.Tensor, k int, proponents bool) (*TopK, error) {
	if scores == nil || scores.Rank() != 2 {
		return nil, fmt.Errorf("influence: scores must be [n_test, n_train]")
	}
	nt, nr := scores.Shape[0], scores.Shape[1]
	if k < 1 || k > nr {
		return nil, fmt.Errorf("influence: k=%d outside 1..%d (training examples)", k, nr)
	}
	out := &TopK{}
	for i := 0; i < nt; i++ {
		idx := make([]int, nr)
		for j := range idx {
			idx[j] = j
		}
		row := func(j int) float64 { return scores.Float64At(i*nr + j) }
		sort.SliceStable(idx, func(a, b int) bool {
			if proponents {
				return row(idx[a]) > row(idx[b])
			}
			return row(idx[a]) < row(idx[b])
		})
		idx = idx[:k]
		vals := make([]float64, k)
		for j, x := range idx {
			vals[j] = row(x)
		}
		out.Indices = append(out.Indices, idx)
		out.Values = append(out.Values, vals)
	}
	return out, nil
}
