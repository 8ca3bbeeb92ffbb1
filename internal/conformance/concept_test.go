package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"math"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/concept"
	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/tensor"
)

// conceptRunners returns the runners of captum.concept's classes.
func conceptRunners() map[string]runner {
	return map[string]runner{"TCAV": runTCAV}
}

// tcavCase is the part of a TCAV case beyond the common fields.
type tcavCase struct {
	Constructor struct {
		Layers     []string `json:"layers"`
		Classifier struct {
			Kind string `json:"kind"`
		} `json:"classifier"`
		ToInput bool `json:"attribute_to_layer_input"`
	} `json:"constructor"`
	Layers map[string]struct {
		ONNXTensor string `json:"onnx_tensor"`
	} `json:"layers"`
	Concepts []struct {
		ID     int             `json:"id"`
		Name   string          `json:"name"`
		Inputs json.RawMessage `json:"inputs"`
	} `json:"concepts"`
	CAVTraining struct {
		Splits map[string]map[string]struct {
			Train []int `json:"train_indices"`
			Test  []int `json:"test_indices"`
		} `json:"splits"`
	} `json:"cav_training"`
	Expected struct {
		Scores map[string]map[string]struct {
			SignCount json.RawMessage `json:"sign_count"`
			Magnitude json.RawMessage `json:"magnitude"`
		} `json:"scores"`
		CAVs map[string]map[string]struct {
			Weights json.RawMessage `json:"weights"`
			Classes []int           `json:"classes"`
			Accs    float64         `json:"accs"`
		} `json:"cavs"`
	} `json:"expected"`
	Checks []struct {
		Kind        string   `json:"kind"`
		Given       string   `json:"given"`
		Property    string   `json:"property"`
		MinCosine   float64  `json:"min_cosine"`
		MinAccMulti *float64 `json:"min_accuracy_multiclass"`
	} `json:"checks"`
}

func runTCAV(ctx context.Context, c *Case, m *engine.Model) error {
	b, err := readCaseFile(c)
	if err != nil {
		return err
	}
	var tc tcavCase
	if err := json.Unmarshal(b, &tc); err != nil {
		return fmt.Errorf("tcav case: %w", err)
	}
	nt := caseNet(c, m)
	// Layers by module name, resolved to the recorded tensors.
	var layers []string
	tensorOf := map[string]string{}
	for _, l := range tc.Constructor.Layers {
		info, ok := tc.Layers[l]
		if !ok {
			return fmt.Errorf("layer %s has no onnx_tensor", l)
		}
		got, err := m.Resolve(l, tc.Constructor.ToInput)
		if err != nil {
			return err
		}
		if got != info.ONNXTensor {
			return fmt.Errorf("layer %s resolves to %s, the case records %s", l, got, info.ONNXTensor)
		}
		layers = append(layers, l)
		tensorOf[l] = info.ONNXTensor
	}
	byID := map[int]concept.Concept{}
	for _, cc := range tc.Concepts {
		t, err := c.Tensor(cc.Inputs)
		if err != nil {
			return fmt.Errorf("concept %d: %w", cc.ID, err)
		}
		byID[cc.ID] = concept.Concept{ID: cc.ID, Name: cc.Name, Inputs: t}
	}
	var setIDs [][]int
	if err := json.Unmarshal(c.Params["experimental_sets"], &setIDs); err != nil {
		return fmt.Errorf("experimental_sets: %w", err)
	}
	sets := make([][]concept.Concept, len(setIDs))
	for i, ids := range setIDs {
		for _, id := range ids {
			cc, ok := byID[id]
			if !ok {
				return fmt.Errorf("experimental set %v: no concept %d", ids, id)
			}
			sets[i] = append(sets[i], cc)
		}
	}
	tgt, err := c.Int("target", 0)
	if err != nil {
		return err
	}
	in, err := c.Inputs()
	if err != nil {
		return err
	}
	tc0 := &concept.TCAV{Net: nt, Layers: layers, AttributeToLayerInput: tc.Constructor.ToInput}

	// Recorded CAVs.
	recorded := map[string]map[string]*concept.CAV{}
	for key, byLayer := range tc.Expected.CAVs {
		recorded[key] = map[string]*concept.CAV{}
		for l, rc := range byLayer {
			w, err := c.Tensor(rc.Weights)
			if err != nil {
				return fmt.Errorf("cavs %s %s: %w", key, l, err)
			}
			rows := w.Shape[0]
			d := w.Len() / rows
			cav := &concept.CAV{Layer: l, Classes: rc.Classes, Accs: rc.Accs}
			for r := 0; r < rows; r++ {
				row := make([]float64, d)
				for j := range row {
					row[j] = float64(w.F[r*d+j])
				}
				cav.Weights = append(cav.Weights, row)
			}
			recorded[key][l] = cav
		}
	}

	for _, chk := range tc.Checks {
		switch {
		case chk.Kind == "exact" && chk.Given == "expected.cavs":
			scores, err := tc0.Scores(ctx, in, sets, recorded, attr.Class(tgt), attr.Options{})
			if err != nil {
				return err
			}
			tolMag, err := c.tolAt("scores", "magnitude")
			if err != nil {
				return err
			}
			for key, byLayer := range tc.Expected.Scores {
				for l, want := range byLayer {
					got, ok := scores[key][l]
					if !ok {
						return fmt.Errorf("no score for %s %s", key, l)
					}
					ws, err := c.Tensor(want.SignCount)
					if err != nil {
						return err
					}
					wm, err := c.Tensor(want.Magnitude)
					if err != nil {
						return err
					}
					if err := Compare(f64Tensor(got.SignCount), ws, Tol{ATol: 1e-6}); err != nil {
						return fmt.Errorf("scores %s %s sign_count: %w", key, l, err)
					}
					if err := Compare(f64Tensor(got.Magnitude), wm, tolMag); err != nil {
						return fmt.Errorf("scores %s %s magnitude: %w", key, l, err)
					}
				}
			}
		case chk.Kind == "exact":
			if tc.Constructor.Classifier.Kind != "MeanDifferenceClassifier" {
				return fmt.Errorf("%w: classifier %s", errNotImplemented, tc.Constructor.Classifier.Kind)
			}
			tc0.Classifier = concept.MeanDifference{}
			cavs, err := tc0.ComputeCAVs(ctx, sets, true)
			if err != nil {
				return err
			}
			tolW, err := c.tolAt("cavs", "weights")
			if err != nil {
				return err
			}
			tolA, err := c.tolAt("cavs", "accs")
			if err != nil {
				return err
			}
			for key, byLayer := range recorded {
				for l, want := range byLayer {
					got := cavs[key][l]
					if got == nil {
						return fmt.Errorf("no CAV for %s %s", key, l)
					}
					if fmt.Sprint(got.Classes) != fmt.Sprint(want.Classes) {
						return fmt.Errorf("cavs %s %s classes %v, want %v", key, l, got.Classes, want.Classes)
					}
					if err := Compare(f64Matrix(got.Weights), f64Matrix(want.Weights), tolW); err != nil {
						return fmt.Errorf("cavs %s %s weights: %w", key, l, err)
					}
					if math.Abs(got.Accs-want.Accs) > tolA.ATol+tolA.RTol*want.Accs {
						return fmt.Errorf("cavs %s %s accs %g, want %g", key, l, got.Accs, want.Accs)
					}
				}
			}
		case chk.Kind == "statistical" && chk.Property == "cav_direction":
			for _, set := range sets {
				key := concept.Key(set)
				for _, l := range layers {
					sp, ok := tc.CAVTraining.Splits[key][l]
					if !ok {
						return fmt.Errorf("no recorded split for %s %s", key, l)
					}
					one := &concept.TCAV{Net: nt, Layers: []string{l}, AttributeToLayerInput: tc.Constructor.ToInput,
						Classifier: concept.DefaultClassifier{CaptumBinaryAccuracy: true,
							Split: func(int) ([]int, []int) { return sp.Train, sp.Test }}}
					cavs, err := one.ComputeCAVs(ctx, [][]concept.Concept{set}, true)
					if err != nil {
						return err
					}
					got, want := cavs[key][l], recorded[key][l]
					for r := range want.Weights {
						cos := cosine(got.Weights[r], want.Weights[r])
						if cos < chk.MinCosine {
							return fmt.Errorf("cav %s %s row %d: cosine %.3f with Captum's, want >= %.3f", key, l, r, cos, chk.MinCosine)
						}
					}
					if len(set) == 2 {
						if math.Abs(got.Accs-want.Accs) > 1e-6 {
							return fmt.Errorf("cav %s %s accs %g, want %g", key, l, got.Accs, want.Accs)
						}
					} else if chk.MinAccMulti != nil && got.Accs < *chk.MinAccMulti {
						return fmt.Errorf("cav %s %s test accuracy %.3f, want >= %.3f", key, l, got.Accs, *chk.MinAccMulti)
					}
				}
			}
		default:
			return fmt.Errorf("%w: check %s", errNotImplemented, chk.Kind)
		}
	}
	return nil
}

func f64Tensor(v []float64) *tensor.Tensor {
	t := tensor.New(len(v))
	for i, x := range v {
		t.F[i] = float32(x)
	}
	return t
}

func f64Matrix(rows [][]float64) *tensor.Tensor {
	d := len(rows[0])
	t := tensor.New(len(rows), d)
	for i, r := range rows {
		for j, x := range r {
			t.F[i*d+j] = float32(x)
		}
	}
	return t
}

func cosine(a, b []float64) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += a[i] * b[i]
		aa += a[i] * a[i]
		bb += b[i] * b[i]
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}
