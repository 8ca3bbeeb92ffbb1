package concept

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/tensor"
)

// Concept is a named set of examples, Captum's Concept: ID identifies it
// (concept keys and CAV files use the ids), Inputs holds its examples as
// a batch of the model's first attributed input.
type Concept struct {
	ID     int
	Name   string
	Inputs *tensor.Tensor
}

// Key joins the concepts' ids with "-", Captum's concepts_to_str.
func Key(concepts []Concept) string {
	ids := make([]string, len(concepts))
	for i, c := range concepts {
		ids[i] = strconv.Itoa(c.ID)
	}
	return strings.Join(ids, "-")
}

// CAV holds the concept activation vectors of an experimental set at a
// layer, as Captum's CAV stores them: one weight row per class (Classes
// ascending) and the classifier's accuracy.
type CAV struct {
	ConceptIDs   []int       `json:"concept_ids"`
	ConceptNames []string    `json:"concept_names"`
	Layer        string      `json:"layer"`
	Weights      [][]float64 `json:"weights"`
	Classes      []int       `json:"classes"`
	Accs         float64     `json:"accs"`
}

// Score is a TCAV score of an experimental set at a layer, one value per
// concept in the set's order: SignCount is the share of inputs whose
// directional derivative along the concept's CAV is positive (the TCAV
// score of the paper), Magnitude the mean of those derivatives.
type Score struct {
	SignCount []float64
	Magnitude []float64
}

// TCAV is Testing with Concept Activation Vectors (Kim et al., ICML 2018),
// Captum's captum.concept.TCAV. For each experimental set and layer it
// trains (or loads) a CAV from the layer activations of the set's
// concepts, then scores the inputs: tcav = d output[target] / d layer ·
// CAV row, sign_count = mean(tcav > 0), magnitude = mean(tcav). The layer
// gradient is Captum's default layer_attr_method,
// LayerGradientXActivation(multiply_by_inputs=False). Cost: one forward
// row per concept example and layer (cached per concept), and one forward
// and backward row per input and layer.
type TCAV struct {
	Net *attr.Net
	// Layers are the layers scored: module paths ("layer4", "fc2") or
	// tensor names.
	Layers []string
	// Classifier trains the CAVs; nil is DefaultClassifier{}.
	Classifier Classifier
	// SavePath, when set, is where CAVs are stored and looked up, as
	// Captum's save_path: <SavePath>/<ModelID>/<key>-<layer>.json (JSON
	// instead of Captum's pickle).
	SavePath string
	// ModelID names the model in SavePath; "" means "default_model_id".
	ModelID string
	// AttributeToLayerInput uses the layers' inputs instead of outputs.
	AttributeToLayerInput bool
	// Progress, if set, is called after each (set, layer) CAV.
	Progress func(done, total int)

	acts map[string][][]float64 // concept id + layer -> flattened rows
}

// ComputeCAVs returns the CAVs of every experimental set at every layer,
// keyed by Key(set) and layer, training the classifier on the concepts'
// layer activations (rows labeled with the concept ids, concatenated in
// the set's order). With SavePath set, stored CAVs are loaded and new ones
// stored; forceTrain retrains them regardless.
func (t *TCAV) ComputeCAVs(ctx context.Context, sets [][]Concept, forceTrain bool) (map[string]map[string]*CAV, error) {
	if t.Net == nil || t.Net.Model == nil {
		return nil, fmt.Errorf("concept: TCAV has no Net")
	}
	if len(t.Layers) == 0 {
		return nil, fmt.Errorf("concept: TCAV has no layers")
	}
	clf := t.Classifier
	if clf == nil {
		clf = DefaultClassifier{}
	}
	out := map[string]map[string]*CAV{}
	done, total := 0, len(sets)*len(t.Layers)
	for _, set := range sets {
		if len(set) < 2 {
			return nil, fmt.Errorf("concept: experimental set %q needs at least 2 concepts", Key(set))
		}
		key := Key(set)
		ids := map[int]bool{}
		for _, c := range set {
			if ids[c.ID] {
				return nil, fmt.Errorf("concept: concept id %d appears twice in set %q", c.ID, key)
			}
			ids[c.ID] = true
		}
		out[key] = map[string]*CAV{}
		for _, layer := range t.Layers {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if !forceTrain {
				if cav, err := t.load(key, layer); err != nil {
					return nil, err
				} else if cav != nil {
					out[key][layer] = cav
					continue
				}
			}
			var rows [][]float64
			var labels []int
			for _, c := range set {
				a, err := t.activations(ctx, c, layer)
				if err != nil {
					return nil, err
				}
				rows = append(rows, a...)
				for range a {
					labels = append(labels, c.ID)
				}
			}
			fit, err := clf.Train(ctx, rows, labels)
			if err != nil {
				return nil, fmt.Errorf("concept: set %s, layer %s: %w", key, layer, err)
			}
			cav := &CAV{Layer: layer, Weights: fit.Weights, Classes: fit.Classes, Accs: fit.Accs}
			for _, c := range set {
				cav.ConceptIDs = append(cav.ConceptIDs, c.ID)
				cav.ConceptNames = append(cav.ConceptNames, c.Name)
			}
			if err := t.save(key, cav); err != nil {
				return nil, err
			}
			out[key][layer] = cav
			done++
			if t.Progress != nil {
				t.Progress(done, total)
			}
		}
	}
	return out, nil
}

// activations returns a concept's flattened activations at a layer.
func (t *TCAV) activations(ctx context.Context, c Concept, layer string) ([][]float64, error) {
	k := strconv.Itoa(c.ID) + "\x00" + layer
	if a, ok := t.acts[k]; ok {
		return a, nil
	}
	if c.Inputs == nil || c.Inputs.Rank() == 0 || c.Inputs.Shape[0] == 0 {
		return nil, fmt.Errorf("concept: concept %d (%s) has no examples", c.ID, c.Name)
	}
	la := &attr.LayerActivation{Net: t.Net, Layer: layer, AttributeToLayerInput: t.AttributeToLayerInput}
	r, err := la.Attribute(ctx, []*tensor.Tensor{c.Inputs}, attr.Options{})
	if err != nil {
		return nil, fmt.Errorf("concept: activations of concept %d (%s) at %s: %w", c.ID, c.Name, layer, err)
	}
	rows := flatRows(r.Attributions[0])
	if t.acts == nil {
		t.acts = map[string][][]float64{}
	}
	t.acts[k] = rows
	return rows, nil
}

// flatRows flattens a batch [N, ...] into N float64 rows.
func flatRows(v *tensor.Tensor) [][]float64 {
	n := v.Shape[0]
	d := v.Len() / max(n, 1)
	rows := make([][]float64, n)
	for i := range rows {
		rows[i] = make([]float64, d)
		for j := range rows[i] {
			rows[i][j] = v.Float64At(i*d + j)
		}
	}
	return rows
}

// Interpret returns the TCAV scores of the inputs for the target, keyed
// by Key(set) and layer (Captum's interpret). The CAVs are computed (or
// loaded) first.
func (t *TCAV) Interpret(ctx context.Context, inputs []*tensor.Tensor, sets [][]Concept, target attr.Target, o attr.Options) (map[string]map[string]Score, error) {
	cavs, err := t.ComputeCAVs(ctx, sets, false)
	if err != nil {
		return nil, err
	}
	return t.Scores(ctx, inputs, sets, cavs, target, o)
}

// Scores scores the inputs with given CAVs (keyed as ComputeCAVs returns
// them).
func (t *TCAV) Scores(ctx context.Context, inputs []*tensor.Tensor, sets [][]Concept, cavs map[string]map[string]*CAV, target attr.Target, o attr.Options) (map[string]map[string]Score, error) {
	o.Target = target
	out := map[string]map[string]Score{}
	for _, layer := range t.Layers {
		g, err := t.LayerGradients(ctx, inputs, layer, o)
		if err != nil {
			return nil, err
		}
		for _, set := range sets {
			key := Key(set)
			cav := cavs[key][layer]
			if cav == nil {
				return nil, fmt.Errorf("concept: no CAV for set %s at layer %s", key, layer)
			}
			s, err := ScoreOf(g, cav, set)
			if err != nil {
				return nil, fmt.Errorf("concept: set %s, layer %s: %w", key, layer, err)
			}
			if out[key] == nil {
				out[key] = map[string]Score{}
			}
			out[key][layer] = s
		}
	}
	return out, nil
}

// LayerGradients returns the gradient of the target output with respect
// to the layer, flattened to one row per input.
func (t *TCAV) LayerGradients(ctx context.Context, inputs []*tensor.Tensor, layer string, o attr.Options) ([][]float64, error) {
	lg := &attr.LayerGradientXActivation{Net: t.Net, Layer: layer, AttributeToLayerInput: t.AttributeToLayerInput, Local: true}
	r, err := lg.Attribute(ctx, inputs, o)
	if err != nil {
		return nil, fmt.Errorf("concept: layer gradients at %s: %w", layer, err)
	}
	return flatRows(r.Attributions[0]), nil
}

// ScoreOf scores flattened layer gradients [N][d] with a CAV, ordering the
// values as the concepts of set.
func ScoreOf(grads [][]float64, cav *CAV, set []Concept) (Score, error) {
	n := len(grads)
	if n == 0 {
		return Score{}, errors.New("no inputs")
	}
	k := len(cav.Weights)
	if k != len(cav.Classes) {
		return Score{}, fmt.Errorf("CAV has %d weight rows for %d classes", k, len(cav.Classes))
	}
	sign := make([]float64, k)
	mag := make([]float64, k)
	for c, w := range cav.Weights {
		if len(w) != len(grads[0]) {
			return Score{}, fmt.Errorf("CAV row of %d values for layer gradients of %d", len(w), len(grads[0]))
		}
		pos := 0
		sum := 0.0
		for _, g := range grads {
			s := 0.0
			for j, v := range g {
				s += v * w[j]
			}
			if s > 0 {
				pos++
			}
			sum += s
		}
		sign[c] = float64(pos) / float64(n)
		mag[c] = sum / float64(n)
	}
	var sc Score
	for _, cn := range set {
		i := slices.Index(cav.Classes, cn.ID)
		if i < 0 {
			return Score{}, fmt.Errorf("concept %d has no CAV row (classes %v)", cn.ID, cav.Classes)
		}
		sc.SignCount = append(sc.SignCount, sign[i])
		sc.Magnitude = append(sc.Magnitude, mag[i])
	}
	return sc, nil
}

// cavPath is where a CAV is stored.
func (t *TCAV) cavPath(key, layer string) string {
	id := t.ModelID
	if id == "" {
		id = "default_model_id"
	}
	safe := strings.NewReplacer("/", "_", string(filepath.Separator), "_").Replace(layer)
	return filepath.Join(t.SavePath, id, key+"-"+safe+".json")
}

func (t *TCAV) load(key, layer string) (*CAV, error) {
	if t.SavePath == "" {
		return nil, nil
	}
	p := t.cavPath(key, layer)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("concept: %w", err)
	}
	var cav CAV
	if err := json.Unmarshal(b, &cav); err != nil {
		return nil, fmt.Errorf("concept: CAV file %s: %w", p, err)
	}
	return &cav, nil
}

func (t *TCAV) save(key string, cav *CAV) error {
	if t.SavePath == "" {
		return nil
	}
	p := t.cavPath(key, cav.Layer)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("concept: %w", err)
	}
	b, err := json.Marshal(cav)
	if err != nil {
		return err
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		return fmt.Errorf("concept: %w", err)
	}
	return nil
}
