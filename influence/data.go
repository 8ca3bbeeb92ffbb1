package influence

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/npy"
	"github.com/loupe-ml/loupe/tensor"
)

// Dataset is a set of examples: Inputs holds the batch of each model input
// (all with the same first dimension), Labels the class of each example
// (nil for SimilarityInfluence, which needs none).
type Dataset struct {
	Inputs []*tensor.Tensor
	Labels []int
}

// Len returns the number of examples.
func (d Dataset) Len() int {
	if len(d.Inputs) == 0 || d.Inputs[0] == nil || d.Inputs[0].Rank() == 0 {
		return 0
	}
	return d.Inputs[0].Shape[0]
}

// check checks the inputs' batch sizes and, when labels are needed, the
// labels.
func (d Dataset) check(what string, labels bool) error {
	n := d.Len()
	if n == 0 {
		return fmt.Errorf("influence: %s has no examples", what)
	}
	for i, t := range d.Inputs {
		if t == nil || t.Rank() == 0 || t.Shape[0] != n {
			return fmt.Errorf("influence: %s input %d does not have %d rows", what, i, n)
		}
		if err := t.Check(); err != nil {
			return fmt.Errorf("influence: %s input %d: %w", what, i, err)
		}
	}
	if labels && len(d.Labels) != n {
		return fmt.Errorf("influence: %s has %d labels for %d examples", what, len(d.Labels), n)
	}
	return nil
}

// rows returns examples lo..hi as a Dataset.
func (d Dataset) rows(lo, hi int) Dataset {
	out := Dataset{}
	for _, t := range d.Inputs {
		row := t.Len() / t.Shape[0]
		shape := append([]int{hi - lo}, t.Shape[1:]...)
		s := tensor.Zeros(t.DType, shape)
		switch t.DType {
		case tensor.Float32:
			copy(s.F, t.F[lo*row:hi*row])
		case tensor.Int64:
			copy(s.I, t.I[lo*row:hi*row])
		case tensor.Bool:
			copy(s.B, t.B[lo*row:hi*row])
		}
		out.Inputs = append(out.Inputs, s)
	}
	if d.Labels != nil {
		out.Labels = d.Labels[lo:hi]
	}
	return out
}

// LoadDataset reads a training set from a folder: inputs.npy (or, for
// models of several inputs, input0.npy, input1.npy, ...) and, if present,
// labels.npy (integers, one per example).
func LoadDataset(dir string) (Dataset, error) {
	var d Dataset
	if t, err := npy.ReadFile(filepath.Join(dir, "inputs.npy")); err == nil {
		d.Inputs = []*tensor.Tensor{t}
	} else if !os.IsNotExist(err) {
		return d, fmt.Errorf("influence: %w", err)
	} else {
		for i := 0; ; i++ {
			t, err := npy.ReadFile(filepath.Join(dir, fmt.Sprintf("input%d.npy", i)))
			if os.IsNotExist(err) {
				break
			}
			if err != nil {
				return d, fmt.Errorf("influence: %w", err)
			}
			d.Inputs = append(d.Inputs, t)
		}
	}
	if len(d.Inputs) == 0 {
		return d, fmt.Errorf("influence: %s holds neither inputs.npy nor input0.npy", dir)
	}
	if t, err := npy.ReadFile(filepath.Join(dir, "labels.npy")); err == nil {
		if t.Rank() != 1 {
			return d, fmt.Errorf("influence: %s: labels.npy has shape %v, want [N]", dir, t.Shape)
		}
		for i := 0; i < t.Len(); i++ {
			d.Labels = append(d.Labels, int(t.Float64At(i)))
		}
	} else if !os.IsNotExist(err) {
		return d, fmt.Errorf("influence: %w", err)
	}
	return d, d.check(dir, false)
}

// Checkpoint is one saved state of the model during training and the
// learning rate used with it (what Captum's checkpoints_load_func
// returns).
type Checkpoint struct {
	Model        *engine.Model
	LearningRate float64
}

// LoadCheckpoints loads one ONNX file per checkpoint, each with its
// learning rate.
func LoadCheckpoints(paths []string, rates []float64) ([]Checkpoint, error) {
	if len(paths) != len(rates) {
		return nil, fmt.Errorf("influence: %d checkpoints for %d learning rates", len(paths), len(rates))
	}
	out := make([]Checkpoint, len(paths))
	for i, p := range paths {
		m, err := engine.Load(p)
		if err != nil {
			return nil, fmt.Errorf("influence: checkpoint %s: %w", p, err)
		}
		out[i] = Checkpoint{Model: m, LearningRate: rates[i]}
	}
	return out, nil
}

// feeds maps a model's inputs (in the model's order) to a batch.
func feeds(m *engine.Model, inputs []*tensor.Tensor) (map[string]*tensor.Tensor, error) {
	ins := m.Inputs()
	if len(inputs) != len(ins) {
		return nil, fmt.Errorf("influence: %d input tensors for a model of %d inputs", len(inputs), len(ins))
	}
	f := make(map[string]*tensor.Tensor, len(ins))
	for i, in := range ins {
		f[in.Name] = inputs[i]
	}
	return f, nil
}

// output returns the model's first output name.
func output(m *engine.Model) string { return m.OutputNames()[0] }

// forward runs a model on a batch.
func forward(ctx context.Context, m *engine.Model, inputs []*tensor.Tensor, o *engine.Options) (*engine.Pass, error) {
	f, err := feeds(m, inputs)
	if err != nil {
		return nil, err
	}
	return m.Forward(ctx, f, o)
}
