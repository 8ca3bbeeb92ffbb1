// Package insights serves loupe Insights: a web app to browse a data set's
// predictions and their attributions, for one model or several side by
// side, as Captum Insights' AttributionVisualizer does. It shows each
// example with its true class and every model's prediction, filters by
// class, by right or wrong and by model, pages through the data set, and
// draws the attributions of any method (its arguments, target, sign and
// view chosen on the page) for each of the example's inputs in its
// modality: images as heat maps, text as highlighted tokens, general
// features as a bar per feature; with each input's net contribution.
// Attributions are computed when a card comes into view, and cached.
//
// The models may be object detectors instead (Model.Detector): each
// example then shows every detector's boxes, and the explanation of the
// box selected on the page (Request.Box), by any method with the box's
// class score as its target, or by D-RISE.
package insights

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/detect"
	"github.com/loupe-ml/loupe/internal/explain"
	"github.com/loupe-ml/loupe/tensor"
)

// Example is one item of the data set.
type Example struct {
	// ID names the example (a file name, say).
	ID string
	// Inputs are the models' attributed inputs, each with a batch
	// dimension of 1, in the order of the models' inputs (every model
	// takes the same inputs).
	Inputs []*tensor.Tensor
	// Image is the picture shown for the first image input, [C, H, W]
	// with values in [0, 1]; nil draws the input itself (scaled to its
	// range when it leaves [0, 1]).
	Image *tensor.Tensor
	// Tokens holds, for a text input k, the words shown for its tokens
	// (Tokens[k], one per position); nil or a list of another length
	// uses Input.Vocabulary, or the token numbers.
	Tokens [][]string
	// Label is the true class, or -1 when unknown.
	Label int
}

// Modality is how an input is shown.
type Modality string

// The modalities: an image ([1, 1 or 3, H, W] floats) is drawn as a heat
// map over its picture, text (token numbers, [1, L] int64) as its tokens
// highlighted, and features (anything else) as a bar per value.
const (
	Image    Modality = "image"
	Text     Modality = "text"
	Features Modality = "features"
)

// Input describes one of the models' inputs.
type Input struct {
	// Name is shown on the page ("": the model's name for it).
	Name string
	// Modality is how the input is shown ("": Image for [1, 1 or 3, H, W]
	// floats, Text for int64 tokens, else Features).
	Modality Modality
	// Features names a Features input's values, flattened in row-major
	// order; when its length differs, values are named by index.
	Features []string
	// Vocabulary names a Text input's tokens by number.
	Vocabulary []string
}

// Model is one of the models compared.
type Model struct {
	// Name is shown on the page ("": model 1, model 2, ...).
	Name string
	Net  *attr.Net
	// Layer is the layer of layer methods (CAMs, Layer...) when a request
	// names none: each model has its own layer names ("": the method's
	// default, the last convolution for the CAMs).
	Layer string
	// Detector, if set, makes the model an object detector: Net is its
	// Net (Net may be left nil), the examples show its boxes and requests
	// explain one box (Request.Box). Either every model is a detector or
	// none is; a detector takes one image input [1, C, H, W].
	Detector *detect.Detector
}

// Options are NewModels' options beside the models and examples.
type Options struct {
	// Classes names the models' outputs; classes past its end (or
	// named "") are shown by number.
	Classes []string
	// Inputs describe the models' inputs in order; missing ones, or
	// their missing fields, are found from the first example.
	Inputs []Input
	// Progress, if set, is called after each example is predicted by
	// each model.
	Progress func(done, total int)
}

// Server holds the models, their data set and predictions, and serves
// the app (Handler).
type Server struct {
	models   []Model
	inputs   []Input
	classes  []string
	examples []Example
	rows     []Row
	method   string // the cheap method the page starts with
	detector bool   // the models are detectors
	// dets holds, for detectors, each example's detections by each
	// model, best first: dets[example][model].
	dets [][][]detect.Detection

	sem     chan struct{} // bounds concurrent attributions
	waiting atomic.Int64  // requests waiting for a slot

	// run computes attributions: explain.Run, or a test's stand-in.
	run func(ctx context.Context, nt *attr.Net, inputs []*tensor.Tensor, r explain.Request) (*explain.Result, error)

	results *cache // *explain.Result by model, example and request (no view)
	answers *cache // encoded answers ([]byte) by the whole request
}

// Row is one example and every model's prediction on it.
type Row struct {
	Index       int          `json:"index"`
	ID          string       `json:"id"`
	Label       int          `json:"label"`
	LabelName   string       `json:"label_name"`
	Predictions []Prediction `json:"predictions"` // one per model, in order
}

// Prediction is one model's answer on one example.
type Prediction struct {
	Model       string  `json:"model"`
	Predicted   int     `json:"predicted"`
	Name        string  `json:"predicted_name"`
	Probability float64 `json:"probability"`
	Correct     *bool   `json:"correct"` // nil when the label is unknown (always for detectors)
	// Boxes are a detector's detections, best first (Predicted and
	// Probability are the first's class and score; -1 and 0 when there
	// is none).
	Boxes []Box `json:"boxes,omitempty"`
}

// New serves one model: NewModels with the model named "model".
func New(ctx context.Context, nt *attr.Net, classes []string, examples []Example, progress func(done, total int)) (*Server, error) {
	return NewModels(ctx, []Model{{Name: "model", Net: nt}}, examples, Options{Classes: classes, Progress: progress})
}

// NewModels runs every model on every example (cost: one forward pass per
// example and model, in batches) and returns a server for them. Every
// model must take the examples' inputs. Detectors (Model.Detector) run
// with non-maximum suppression; their examples' labels are shown but not
// scored.
func NewModels(ctx context.Context, models []Model, examples []Example, o Options) (*Server, error) {
	if len(models) == 0 {
		return nil, errors.New("insights: no model")
	}
	if len(examples) == 0 {
		return nil, errors.New("insights: no examples")
	}
	s := &Server{classes: o.Classes, examples: examples, results: newCache(maxResults, maxResultBytes), answers: newCache(0, maxAnswerBytes),
		sem: make(chan struct{}, max(runtime.GOMAXPROCS(0), 1)), run: explain.Run}
	names := map[string]bool{}
	ndet := 0
	for k, m := range models {
		if m.Detector != nil {
			if m.Detector.Net == nil {
				return nil, fmt.Errorf("insights: model %d: a detector without a network", k+1)
			}
			if err := m.Detector.Config.Check(); err != nil {
				return nil, fmt.Errorf("insights: model %d: detector configuration: %w", k+1, err)
			}
			m.Net = m.Detector.Net
			ndet++
		}
		if m.Net == nil {
			return nil, fmt.Errorf("insights: model %d: no network", k+1)
		}
		if m.Name == "" {
			m.Name = "model " + strconv.Itoa(k+1)
		}
		if names[m.Name] {
			return nil, fmt.Errorf("insights: two models named %q", m.Name)
		}
		names[m.Name] = true
		if k > 0 && len(m.Net.Inputs) != len(s.models[0].Net.Inputs) {
			return nil, fmt.Errorf("insights: model %s takes %d inputs (%s), model %s %d: every model must take the same inputs",
				m.Name, len(m.Net.Inputs), strings.Join(m.Net.Inputs, ", "), s.models[0].Name, len(s.models[0].Net.Inputs))
		}
		s.models = append(s.models, m)
	}
	if ndet > 0 && ndet < len(models) {
		return nil, fmt.Errorf("insights: %d of %d models are detectors: compare detectors with detectors, classifiers with classifiers", ndet, len(models))
	}
	s.detector = ndet > 0
	nin := len(s.models[0].Net.Inputs)
	if s.detector && nin != 1 {
		return nil, fmt.Errorf("insights: a detector takes one image input; model %s takes %d (%s)", s.models[0].Name, nin, strings.Join(s.models[0].Net.Inputs, ", "))
	}
	for i, ex := range examples {
		if len(ex.Inputs) != nin {
			return nil, fmt.Errorf("insights: example %d (%s) has %d inputs, the models take %d (%s)", i, ex.ID, len(ex.Inputs), nin, strings.Join(s.models[0].Net.Inputs, ", "))
		}
		for k, x := range ex.Inputs {
			if x == nil || x.Rank() == 0 || x.Shape[0] != 1 {
				return nil, fmt.Errorf("insights: example %d (%s) input %d: want a batch of one, got %v", i, ex.ID, k, shapeOf(x))
			}
		}
	}
	if len(o.Inputs) > nin {
		return nil, fmt.Errorf("insights: %d inputs described, the models take %d", len(o.Inputs), nin)
	}
	s.inputs = make([]Input, nin)
	copy(s.inputs, o.Inputs)
	for k := range s.inputs {
		in := &s.inputs[k]
		if in.Name == "" {
			in.Name = s.models[0].Net.Inputs[k]
		}
		x := examples[0].Inputs[k]
		if in.Modality == "" {
			in.Modality = GuessModality(x)
		}
		if s.detector && in.Modality != Image {
			return nil, fmt.Errorf("insights: a detector's input is an image; input %s has shape %v (%s), shown as %s", in.Name, x.Shape, x.DType, in.Modality)
		}
		switch in.Modality {
		case Image:
			if x.Rank() != 4 || (x.Shape[1] != 1 && x.Shape[1] != 3) || x.DType != tensor.Float32 {
				return nil, fmt.Errorf("insights: input %s has shape %v (%s): an image input is [1, 1 or 3, H, W] floats", in.Name, x.Shape, x.DType)
			}
		case Text, Features:
		default:
			return nil, fmt.Errorf("insights: input %s: unknown modality %q (want image, text or features)", in.Name, in.Modality)
		}
	}
	s.method = "Saliency" // one gradient: the cheapest look at a model
	for _, x := range examples[0].Inputs {
		if x.DType != tensor.Float32 {
			s.method = "FeatureAblation" // gradients do not reach token numbers
		}
	}
	s.rows = make([]Row, len(examples))
	for i, ex := range examples {
		s.rows[i] = Row{Index: i, ID: ex.ID, Label: ex.Label, Predictions: make([]Prediction, len(s.models))}
		if ex.Label >= 0 {
			s.rows[i].LabelName = s.className(ex.Label)
		}
	}
	done, total := 0, len(examples)*len(s.models)
	if s.detector {
		s.dets = make([][][]detect.Detection, len(examples))
		for i := range s.dets {
			s.dets[i] = make([][]detect.Detection, len(s.models))
		}
	}
	for mi, m := range s.models {
		if s.detector {
			for lo := 0; lo < len(examples); {
				hi := lo + 1
				for hi < len(examples) && hi-lo < predictBatch && sameShapes(examples[lo].Inputs, examples[hi].Inputs) {
					hi++
				}
				dets, err := detectAll(ctx, m.Detector, examples[lo:hi])
				if err != nil && hi-lo > 1 {
					hi = lo + 1
					dets, err = detectAll(ctx, m.Detector, examples[lo:hi])
				}
				if err != nil {
					return nil, fmt.Errorf("insights: model %s, example %d (%s): %w", m.Name, lo, examples[lo].ID, err)
				}
				for k, ex := range examples[lo:hi] {
					s.dets[lo+k][mi] = dets[k]
					s.rows[lo+k].Predictions[mi] = s.detectorPrediction(m.Name, dets[k], ex.Inputs[0])
					done++
					if o.Progress != nil {
						o.Progress(done, total)
					}
				}
				lo = hi
			}
			continue
		}
		// Run the model on runs of up to predictBatch examples of one shape.
		for lo := 0; lo < len(examples); {
			hi := lo + 1
			for hi < len(examples) && hi-lo < predictBatch && sameShapes(examples[lo].Inputs, examples[hi].Inputs) {
				hi++
			}
			top, prob, err := predict(ctx, m.Net, examples[lo:hi])
			if err != nil && hi-lo > 1 {
				hi = lo + 1 // find the example at fault
				top, prob, err = predict(ctx, m.Net, examples[lo:hi])
			}
			if err != nil {
				return nil, fmt.Errorf("insights: model %s, example %d (%s): %w", m.Name, lo, examples[lo].ID, err)
			}
			for k, ex := range examples[lo:hi] {
				p := Prediction{Model: m.Name, Predicted: top[k], Probability: prob[k], Name: s.className(top[k])}
				if ex.Label >= 0 {
					c := ex.Label == p.Predicted
					p.Correct = &c
				}
				s.rows[lo+k].Predictions[mi] = p
				done++
				if o.Progress != nil {
					o.Progress(done, total)
				}
			}
			lo = hi
		}
	}
	return s, nil
}

func shapeOf(x *tensor.Tensor) any {
	if x == nil {
		return "nothing"
	}
	return x.Shape
}

// GuessModality says how to show an input from one example of it: Image
// for [1, 1 or 3, H, W] floats, Text for int64 token numbers ([1, L] or
// more dimensions), else Features.
func GuessModality(x *tensor.Tensor) Modality {
	switch {
	case x.DType == tensor.Float32 && x.Rank() == 4 && (x.Shape[1] == 1 || x.Shape[1] == 3) && x.Shape[2] > 1 && x.Shape[3] > 1:
		return Image
	case x.DType == tensor.Int64 && x.Rank() >= 2:
		return Text
	}
	return Features
}

// predictBatch is the most examples NewModels runs a model on at once.
const predictBatch = 32

// predict runs a model on examples of one shape, stacked into a batch.
func predict(ctx context.Context, nt *attr.Net, exs []Example) ([]int, []float64, error) {
	inputs := make([]*tensor.Tensor, len(exs[0].Inputs))
	for k := range inputs {
		parts := make([]*tensor.Tensor, len(exs))
		for j, ex := range exs {
			parts[j] = ex.Inputs[k]
		}
		inputs[k] = stack(parts)
	}
	y, err := nt.Eval(ctx, inputs)
	if err != nil {
		return nil, nil, err
	}
	top, prob, err := attr.TopClasses(y)
	if err != nil || len(top) != len(exs) {
		return nil, nil, fmt.Errorf("the model's output has shape %v, want [%d, classes]", y.Shape, len(exs))
	}
	return top, prob, nil
}

// sameShapes says whether two examples' inputs have the same shapes and
// types, so that they can share a batch.
func sameShapes(a, b []*tensor.Tensor) bool {
	for k := range a {
		if a[k].DType != b[k].DType || !tensor.SameShape(a[k].Shape, b[k].Shape) {
			return false
		}
	}
	return true
}

// stack concatenates tensors of one shape and type, each with a batch
// dimension, along that dimension.
func stack(parts []*tensor.Tensor) *tensor.Tensor {
	if len(parts) == 1 {
		return parts[0]
	}
	shape := append([]int{0}, parts[0].Shape[1:]...)
	for _, p := range parts {
		shape[0] += p.Shape[0]
	}
	out := tensor.Zeros(parts[0].DType, shape)
	f, i, b := out.F[:0], out.I[:0], out.B[:0]
	for _, p := range parts {
		f, i, b = append(f, p.F...), append(i, p.I...), append(b, p.B...)
	}
	return out
}

func (s *Server) className(i int) string {
	if i >= 0 && i < len(s.classes) && s.classes[i] != "" {
		return s.classes[i]
	}
	return strconv.Itoa(i)
}

// Models returns the models' names, in order.
func (s *Server) Models() []string {
	out := make([]string, len(s.models))
	for i, m := range s.models {
		out[i] = m.Name
	}
	return out
}

// Inputs returns the inputs as shown: names and modalities set.
func (s *Server) Inputs() []Input { return append([]Input(nil), s.inputs...) }

// Filter chooses examples.
type Filter struct {
	// Class (-1: any) is matched by the true class or, for unlabelled
	// examples, the class predicted by Model (the first model when -1).
	// For detectors it keeps the examples where Model (any model when
	// -1) found a box of the class.
	Class int
	// Correct is "", "right" or "wrong": with Model -1, right by every
	// model or wrong by some.
	Correct string
	// Model is the model whose predictions are filtered (-1: all).
	Model int
}

// AnyFilter lets every example through.
var AnyFilter = Filter{Class: -1, Model: -1}

// Examples returns the rows that pass a filter, in data set order.
func (s *Server) Examples(f Filter) ([]Row, error) {
	switch f.Correct {
	case "", "right", "wrong":
	default:
		return nil, fmt.Errorf("filter %q: want right or wrong", f.Correct)
	}
	if f.Model < -1 || f.Model >= len(s.models) {
		return nil, fmt.Errorf("no model %d (there are %d)", f.Model, len(s.models))
	}
	out := []Row{}
	for _, r := range s.rows {
		preds := r.Predictions
		if f.Model >= 0 {
			preds = preds[f.Model : f.Model+1]
		}
		if s.detector {
			if f.Correct != "" {
				return nil, errors.New("right or wrong: detections are not scored against labels")
			}
			if f.Class >= 0 && !slices.ContainsFunc(preds, func(p Prediction) bool {
				return slices.ContainsFunc(p.Boxes, func(b Box) bool { return b.Class == f.Class })
			}) {
				continue
			}
			out = append(out, r)
			continue
		}
		c := r.Label
		if c < 0 {
			c = preds[0].Predicted
		}
		if f.Class >= 0 && c != f.Class {
			continue
		}
		if f.Correct != "" {
			if r.Label < 0 {
				continue
			}
			right := true
			for _, p := range preds {
				right = right && *p.Correct
			}
			if right != (f.Correct == "right") {
				continue
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// Summary counts the predictions: all examples, the labelled ones, how
// many each model gets right, and the classes that occur (as a true or a
// predicted class; no others).
type Summary struct {
	Examples int            `json:"examples"`
	Labelled int            `json:"labelled"`
	Models   []ModelSummary `json:"models"`
	Classes  []ClassSummary `json:"classes"`
}

// ModelSummary is one model's line of a Summary.
type ModelSummary struct {
	Name  string `json:"name"`
	Right int    `json:"right"`
	// Layer is the model's layer for layer methods (Model.Layer).
	Layer string `json:"layer,omitempty"`
}

// ClassSummary is one class's line of a Summary: how many examples are
// of it (by true class, or the first model's prediction when unlabelled),
// how many each model predicts as it and how many of its own it gets
// right.
type ClassSummary struct {
	Index     int    `json:"index"`
	Name      string `json:"name"`
	Examples  int    `json:"examples"`
	Predicted []int  `json:"predicted"`
	Right     []int  `json:"right"`
}

// Summary counts the server's predictions. For detectors, a class's
// Examples counts the examples where the first model found it, Predicted
// the boxes of it each model found, and Right nothing.
func (s *Server) Summary() Summary {
	sum := Summary{Examples: len(s.rows)}
	for _, m := range s.models {
		sum.Models = append(sum.Models, ModelSummary{Name: m.Name, Layer: m.Layer})
	}
	byClass := map[int]*ClassSummary{}
	class := func(c int) *ClassSummary {
		if cs, ok := byClass[c]; ok {
			return cs
		}
		cs := &ClassSummary{Index: c, Name: s.className(c), Predicted: make([]int, len(s.models)), Right: make([]int, len(s.models))}
		byClass[c] = cs
		return cs
	}
	for _, r := range s.rows {
		if s.detector {
			seen := map[int]bool{}
			for mi, p := range r.Predictions {
				for _, b := range p.Boxes {
					class(b.Class).Predicted[mi]++
					if mi == 0 && !seen[b.Class] {
						seen[b.Class] = true
						class(b.Class).Examples++
					}
				}
			}
			if r.Label >= 0 {
				sum.Labelled++
			}
			continue
		}
		c := r.Label
		if c >= 0 {
			sum.Labelled++
		} else {
			c = r.Predictions[0].Predicted
		}
		cs := class(c)
		cs.Examples++
		for mi, p := range r.Predictions {
			class(p.Predicted).Predicted[mi]++
			if p.Correct != nil && *p.Correct {
				sum.Models[mi].Right++
				cs.Right[mi]++
			}
		}
	}
	sum.Classes = make([]ClassSummary, 0, len(byClass))
	for _, cs := range byClass {
		sum.Classes = append(sum.Classes, *cs)
	}
	slices.SortFunc(sum.Classes, func(a, b ClassSummary) int { return a.Index - b.Index })
	return sum
}
