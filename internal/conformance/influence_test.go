package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/influence"
	"github.com/loupe-ml/loupe/robust"
	"github.com/loupe-ml/loupe/tensor"
)

// influenceRunners returns the runners of captum.influence's classes.
func influenceRunners() map[string]runner {
	return map[string]runner{
		"TracInCP":            runTracIn,
		"TracInCPFast":        runTracIn,
		"SimilarityInfluence": runSimilarity,
	}
}

// influenceCase is the part of an influence case beyond the common fields.
type influenceCase struct {
	Model struct {
		Checkpoints []struct {
			ONNX string  `json:"onnx"`
			LR   float64 `json:"learning_rate"`
		} `json:"checkpoints"`
	} `json:"model"`
	Constructor struct {
		Layers    []string  `json:"layers"`
		FinalFC   string    `json:"final_fc_layer"`
		Loss      lossSpec  `json:"loss_fn"`
		TestLoss  *lossSpec `json:"test_loss_fn"`
		BatchSize int       `json:"batch_size"`
		Metric    string    `json:"similarity_metric"`
		Direction string    `json:"similarity_direction"`
	} `json:"constructor"`
	Layers map[string]struct {
		ONNXTensor string `json:"onnx_tensor"`
	} `json:"layers"`
	Train struct {
		Inputs []json.RawMessage `json:"inputs"`
		Labels json.RawMessage   `json:"labels"`
	} `json:"train_dataset"`
}

// loadInfluence reads an influence case's extra fields and training set.
func loadInfluence(c *Case) (*influenceCase, influence.Dataset, error) {
	b, err := readCaseFile(c)
	if err != nil {
		return nil, influence.Dataset{}, err
	}
	var ic influenceCase
	if err := json.Unmarshal(b, &ic); err != nil {
		return nil, influence.Dataset{}, err
	}
	var d influence.Dataset
	for i, r := range ic.Train.Inputs {
		t, err := c.Tensor(r)
		if err != nil {
			return nil, d, fmt.Errorf("train_dataset.inputs[%d]: %w", i, err)
		}
		d.Inputs = append(d.Inputs, t)
	}
	if len(ic.Train.Labels) > 0 && string(ic.Train.Labels) != "null" {
		l, err := c.Tensor(ic.Train.Labels)
		if err != nil {
			return nil, d, fmt.Errorf("train_dataset.labels: %w", err)
		}
		d.Labels = labelsOf(l)
	}
	return &ic, d, nil
}

func labelsOf(t *tensor.Tensor) []int {
	out := make([]int, t.Len())
	for i := range out {
		out[i] = int(t.Float64At(i))
	}
	return out
}

// influenceLoss maps a case's loss to a per-example loss: reductions sum
// and mean give per-example gradients too (Captum undoes the mean).
func influenceLoss(l lossSpec) (robust.Loss, error) {
	if l.Kind != "cross_entropy" {
		return nil, fmt.Errorf("%w: loss %q", errNotImplemented, l.Kind)
	}
	return robust.CrossEntropy, nil
}

func runTracIn(ctx context.Context, c *Case, _ *engine.Model) error {
	ic, train, err := loadInfluence(c)
	if err != nil {
		return err
	}
	var paths []string
	var lrs []float64
	for _, ck := range ic.Model.Checkpoints {
		paths = append(paths, filepath.Join(c.Dir, ck.ONNX))
		lrs = append(lrs, ck.LR)
	}
	cks, err := influence.LoadCheckpoints(paths, lrs)
	if err != nil {
		return err
	}
	loss, err := influenceLoss(ic.Constructor.Loss)
	if err != nil {
		return err
	}
	if ic.Constructor.TestLoss != nil {
		return fmt.Errorf("%w: test_loss_fn", errNotImplemented)
	}
	in, err := c.Inputs()
	if err != nil {
		return err
	}
	if !c.InputsLabelsLast || len(in) < 2 {
		return fmt.Errorf("TracIn case without labels last")
	}
	test := influence.Dataset{Inputs: in[:len(in)-1], Labels: labelsOf(in[len(in)-1])}
	var scores *tensor.Tensor
	var self []float64
	if c.Algorithm == "TracInCP" {
		t := &influence.TracInCP{Checkpoints: cks, TrainDataset: train, Layers: ic.Constructor.Layers, LossFn: loss, BatchSize: ic.Constructor.BatchSize}
		if scores, err = t.Influence(ctx, test); err != nil {
			return err
		}
		if self, err = t.SelfInfluence(ctx); err != nil {
			return err
		}
	} else {
		t := &influence.TracInCPFast{Checkpoints: cks, TrainDataset: train, FinalFCLayer: ic.Constructor.FinalFC, LossFn: loss, BatchSize: ic.Constructor.BatchSize}
		if scores, err = t.Influence(ctx, test); err != nil {
			return err
		}
		if self, err = t.SelfInfluence(ctx); err != nil {
			return err
		}
	}
	var exp struct {
		Scores     json.RawMessage `json:"scores"`
		Proponents json.RawMessage `json:"proponents"`
		Opponents  json.RawMessage `json:"opponents"`
		Self       json.RawMessage `json:"self_influence"`
	}
	if err := json.Unmarshal(c.Expected, &exp); err != nil {
		return err
	}
	tol, err := c.tolAt("scores")
	if err != nil {
		return err
	}
	if err := compareRaw(c, exp.Scores, scores, tol); err != nil {
		return fmt.Errorf("scores: %w", err)
	}
	if tol, err = c.tolAt("self_influence"); err != nil {
		return err
	}
	if err := compareRaw(c, exp.Self, f64Tensor(self), tol); err != nil {
		return fmt.Errorf("self_influence: %w", err)
	}
	k, err := c.Int("k", 0)
	if err != nil {
		return err
	}
	for _, side := range []struct {
		name string
		raw  json.RawMessage
		pro  bool
	}{{"proponents", exp.Proponents, true}, {"opponents", exp.Opponents, false}} {
		tk, err := influence.KMostInfluential(scores, k, side.pro)
		if err != nil {
			return err
		}
		if err := compareTopK(c, side.raw, tk, side.name); err != nil {
			return err
		}
	}
	return nil
}

// compareTopK compares indices and values with a recorded {indices,
// values}; indices may differ where the recorded values are within the
// values' atol of each other.
func compareTopK(c *Case, raw json.RawMessage, tk *influence.TopK, path ...string) error {
	var exp struct {
		Indices json.RawMessage `json:"indices"`
		Values  json.RawMessage `json:"values"`
	}
	if err := json.Unmarshal(raw, &exp); err != nil {
		return err
	}
	name := fmt.Sprint(path)
	tol, err := c.tolAt(append(path, "values")...)
	if err != nil {
		return err
	}
	wi, err := c.Tensor(exp.Indices)
	if err != nil {
		return err
	}
	wv, err := c.Tensor(exp.Values)
	if err != nil {
		return err
	}
	if len(tk.Indices) != wi.Shape[0] || len(tk.Indices[0]) != wi.Shape[1] {
		return fmt.Errorf("%s: got %dx%d, want %v", name, len(tk.Indices), len(tk.Indices[0]), wi.Shape)
	}
	k := wi.Shape[1]
	gv := tensor.New(wv.Shape...)
	for i, row := range tk.Indices {
		for j, idx := range row {
			gv.F[i*k+j] = float32(tk.Values[i][j])
			want := int(wi.Float64At(i*k + j))
			if idx == want {
				continue
			}
			ok := false
			for jj := 0; jj < k; jj++ {
				if int(wi.Float64At(i*k+jj)) == idx && math.Abs(wv.Float64At(i*k+jj)-wv.Float64At(i*k+j)) <= tol.ATol {
					ok = true
				}
			}
			if !ok {
				return fmt.Errorf("%s indices: row %d position %d is %d, want %d", name, i, j, idx, want)
			}
		}
	}
	if err := Compare(gv, wv, tol); err != nil {
		return fmt.Errorf("%s values: %w", name, err)
	}
	return nil
}

func runSimilarity(ctx context.Context, c *Case, m *engine.Model) error {
	ic, src, err := loadInfluence(c)
	if err != nil {
		return err
	}
	var layers []string
	for _, l := range ic.Constructor.Layers {
		info, ok := ic.Layers[l]
		if !ok {
			return fmt.Errorf("layer %s has no onnx_tensor", l)
		}
		got, err := m.Resolve(l, false)
		if err != nil {
			return err
		}
		if got != info.ONNXTensor {
			return fmt.Errorf("layer %s resolves to %s, the case records %s", l, got, info.ONNXTensor)
		}
		layers = append(layers, l)
	}
	in, err := c.Inputs()
	if err != nil {
		return err
	}
	si := &influence.SimilarityInfluence{Net: caseNet(c, m), Layers: layers, InfluenceSrcDataset: src,
		SimilarityMetric: ic.Constructor.Metric, SimilarityDirection: ic.Constructor.Direction, BatchSize: ic.Constructor.BatchSize}
	topK, err := c.Int("top_k", 1)
	if err != nil {
		return err
	}
	var exp map[string]struct {
		Full json.RawMessage `json:"full_ranking"`
	}
	if err := json.Unmarshal(c.Expected, &exp); err != nil {
		return err
	}
	var expRaw map[string]json.RawMessage
	if err := json.Unmarshal(c.Expected, &expRaw); err != nil {
		return err
	}
	for _, k := range []int{topK, src.Len()} {
		res, err := si.Influence(ctx, in, k, attr.Options{})
		if err != nil {
			return err
		}
		for _, l := range layers {
			if k == topK {
				if err := compareTopK(c, expRaw[l], res[l], l); err != nil {
					return err
				}
			} else if err := compareTopK(c, exp[l].Full, res[l], l, "full_ranking"); err != nil {
				return err
			}
		}
	}
	return nil
}
