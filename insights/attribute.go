package insights

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/png"
	"math"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"sync"

	"github.com/loupe-ml/loupe/internal/explain"
	"github.com/loupe-ml/loupe/internal/httpguard"
	"github.com/loupe-ml/loupe/internal/methods"
	"github.com/loupe-ml/loupe/tensor"
	"github.com/loupe-ml/loupe/viz"
)

// Request is what to compute and draw for one example.
type Request struct {
	// Model is the model explained, by its place in NewModels' list.
	Model int
	// Input is the input Attribution draws (Explain draws them all).
	Input  int
	Method string
	Params []string // name=value, overlaid on the method's defaults
	Layer  string
	// Target is the output explained, in the command line's syntax (a
	// class number, or pred); "" is the predicted class.
	Target string
	Sign   viz.Sign
	// View is a viz image method for image inputs; "" is
	// blended_heat_map (heat_map when there is no picture to draw on).
	View string
	// Box is, for a detector, the detection explained: its place among
	// the example's detections by the model, best first (Prediction.Boxes).
	// Classifiers ignore it.
	Box int
	// IoU, for a detector, multiplies the box's score by the IoU of the
	// predicted box with the detected one (the box's place as well as its
	// class; pytorch-grad-cam's FasterRCNNBoxScoreTarget). D-RISE
	// ignores it (its similarity already holds the IoU).
	IoU bool
}

// resultKey names a request's attributions on example i: a hash of the
// model, the example, the method, its parameters as resolved (so that
// their order and repeats do not matter), the layer, the target and the
// box.
func (r Request) resultKey(i int, vals methods.Values) string {
	names := make([]string, 0, len(vals))
	for n := range vals {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	fmt.Fprintf(h, "%d\x00%d\x00%s\x00%s\x00%s\x00%d\x00%t", r.Model, i, r.Method, r.Layer, r.Target, r.Box, r.IoU)
	for _, n := range names {
		fmt.Fprintf(h, "\x00%s=%s", n, vals[n])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// answerKey names an answer drawn from those attributions: what (a kind
// of answer), the sign, the view and the input.
func (r Request) answerKey(what, result string) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%d\x00%s\x00%d", what, result, r.Sign, r.View, r.Input))
	return hex.EncodeToString(h[:])
}

// The caches' bounds: attributions of at most this many requests and
// bytes, and answers (figures, explanations) of this many bytes in all.
const (
	maxResults     = 32
	maxResultBytes = 128 << 20
	maxAnswerBytes = 64 << 20
)

// cache keeps values by key, dropping the oldest when it holds more than
// n values (n > 0) or bytes (size > 0) in all.
type cache struct {
	mu         sync.Mutex
	n, size    int
	bytes      int
	vals       map[string]cached
	order      []string // keys, oldest first
	hits, miss int
}

type cached struct {
	v    any
	size int
}

func newCache(n, size int) *cache { return &cache{n: n, size: size, vals: map[string]cached{}} }

func (c *cache) get(key string) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.vals[key]
	if ok {
		c.hits++
	} else {
		c.miss++
	}
	return v.v, ok
}

// put keeps v (of about size bytes) unless it alone exceeds the cache.
func (c *cache) put(key string, v any, size int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.vals[key]; ok || (c.size > 0 && size > c.size) {
		return
	}
	c.vals[key] = cached{v, size}
	c.order = append(c.order, key)
	c.bytes += size
	for len(c.order) > 0 && (c.n > 0 && len(c.order) > c.n || c.size > 0 && c.bytes > c.size) {
		c.bytes -= c.vals[c.order[0]].size
		delete(c.vals, c.order[0])
		c.order = c.order[1:]
	}
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.vals)
}

// maxWaiting is the most attribution requests that wait for a slot; more
// are refused at once (ErrBusy).
const maxWaiting = 64

// ErrBusy is the error of an attribution refused because too many wait.
var ErrBusy = errors.New("too many attributions waiting: try again later")

// PanicError is the error of an attribution that panicked: the method's
// bug, reported as such (HTTP 500) while the server goes on.
type PanicError struct {
	Value any    // what was passed to panic
	Stack []byte // the goroutine's stack when it panicked
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("the attribution failed (internal error: %v)", e.Value)
}

// checked is a request checked against the server: its example, method
// parameters, target and cache key.
type checked struct {
	Request
	i      int
	vals   methods.Values
	target explain.Target
	key    string
}

// check checks a request on example i. The method and its parameters are
// checked first (parameters that name files are refused: see
// methods.NoFiles; numbers must lie in their bounds: methods.Bound); its
// errors are explain.RequestErrors.
func (s *Server) check(i int, r Request) (*checked, error) {
	if i < 0 || i >= len(s.examples) {
		return nil, &explain.RequestError{Err: fmt.Errorf("no example %d (there are %d)", i, len(s.examples))}
	}
	if r.Model < 0 || r.Model >= len(s.models) {
		return nil, &explain.RequestError{Err: fmt.Errorf("no model %d (there are %d)", r.Model, len(s.models))}
	}
	if r.Input < 0 || r.Input >= len(s.inputs) {
		return nil, &explain.RequestError{Err: fmt.Errorf("no input %d (the models take %d)", r.Input, len(s.inputs))}
	}
	if r.View != "" && !slices.Contains(viz.ImageMethods(), r.View) {
		return nil, &explain.RequestError{Err: fmt.Errorf("unknown view %s (want one of %v)", httpguard.QuoteShort(r.View), viz.ImageMethods())}
	}
	if s.detector && r.Method == DRISE {
		vals, err := resolveDRISE(r.Params)
		if err != nil {
			return nil, err
		}
		r.IoU = false // D-RISE's similarity holds the IoU
		target, err := s.checkBox(i, r)
		if err != nil {
			return nil, err
		}
		return &checked{Request: r, i: i, vals: vals, target: target, key: r.resultKey(i, vals)}, nil
	}
	spec, ok := methods.Lookup(r.Method)
	if !ok {
		return nil, &explain.RequestError{Err: fmt.Errorf("%w %s", explain.ErrUnknownMethod, httpguard.QuoteShort(r.Method))}
	}
	vals, err := methods.Resolve(r.Method, spec, r.Params, methods.NoFiles())
	if err != nil {
		return nil, &explain.RequestError{Err: err}
	}
	if s.detector {
		if aug, _ := strconv.ParseBool(vals["aug_smooth"]); aug {
			return nil, &explain.RequestError{Err: errors.New("aug_smooth flips the image, and a box's target does not follow: not for detectors")}
		}
		target, err := s.checkBox(i, r)
		if err != nil {
			return nil, err
		}
		return &checked{Request: r, i: i, vals: vals, target: target, key: r.resultKey(i, vals)}, nil
	}
	r.Box, r.IoU = 0, false // a classifier's answers do not depend on them
	// The predicted class is known since start-up: no model call to find it.
	target := explain.Class(s.rows[i].Predictions[r.Model].Predicted)
	if r.Target != "" {
		if target, err = explain.ParseTarget(r.Target); err != nil {
			return nil, &explain.RequestError{Err: err}
		}
	}
	return &checked{Request: r, i: i, vals: vals, target: target, key: r.resultKey(i, vals)}, nil
}

// answer returns the answer named what to a checked request, from the
// cache, or computed (the attributions from their cache, or run) and
// drawn by draw in a slot. At most GOMAXPROCS attributions run at once;
// the others wait for a slot until ctx is done, at most maxWaiting of
// them.
func (s *Server) answer(ctx context.Context, c *checked, what string, draw func(res *explain.Result) (any, int, error)) (any, error) {
	key := c.answerKey(what, c.key)
	if v, ok := s.answers.get(key); ok {
		return v, nil
	}
	v, size, err := s.inSlot(ctx, func() (any, int, error) {
		res, err := s.attributions(ctx, c)
		if err != nil {
			return nil, 0, err
		}
		return draw(res)
	})
	if err != nil {
		return nil, err
	}
	s.answers.put(key, v, size)
	return v, nil
}

// attributions returns a checked request's attributions, from the cache
// or run.
func (s *Server) attributions(ctx context.Context, c *checked) (*explain.Result, error) {
	if v, ok := s.results.get(c.key); ok {
		return v.(*explain.Result), nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var res *explain.Result
	var err error
	if s.detector {
		res, err = s.explainBox(ctx, c)
	} else {
		res, err = s.run(ctx, s.models[c.Model].Net, s.examples[c.i].Inputs,
			explain.Request{Method: c.Method, Params: c.Params, Layer: s.layerOf(c), Target: c.target})
	}
	if err != nil {
		return nil, err
	}
	if res == nil {
		return nil, errors.New("the method returned nothing")
	}
	size := 0
	for _, a := range res.Attributions {
		if a != nil {
			size += 4*len(a.F) + 8*len(a.I) + len(a.B)
		}
	}
	s.results.put(c.key, res, size)
	return res, nil
}

// inSlot runs fn in an attribution slot, which it always gives back; a
// panic in fn becomes a *PanicError.
func (s *Server) inSlot(ctx context.Context, fn func() (any, int, error)) (v any, size int, err error) {
	if s.waiting.Add(1) > maxWaiting {
		s.waiting.Add(-1)
		return nil, 0, ErrBusy
	}
	select {
	case s.sem <- struct{}{}:
		s.waiting.Add(-1)
	case <-ctx.Done():
		s.waiting.Add(-1)
		return nil, 0, ctx.Err()
	}
	defer func() { <-s.sem }()
	defer func() {
		if p := recover(); p != nil {
			v, size, err = nil, 0, &PanicError{Value: p, Stack: debug.Stack()}
		}
	}()
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	return fn()
}

// Attribution draws the attributions of one input (r.Input) of example i
// by model r.Model as a PNG figure, over the input's picture when it is
// an image; text and features are drawn only by Explain. Errors in the
// request are explain.RequestErrors; a method that panics gives a
// *PanicError, and its slot back.
func (s *Server) Attribution(ctx context.Context, i int, r Request) ([]byte, error) {
	c, err := s.check(i, r)
	if err != nil {
		return nil, err
	}
	v, err := s.answer(ctx, c, "png", func(res *explain.Result) (any, int, error) {
		k := r.Input
		if len(res.Attributions) == 1 {
			k = 0 // a layer's
		}
		if k >= len(res.Attributions) || res.Attributions[k] == nil {
			return nil, 0, fmt.Errorf("%s gives no attributions for input %s", r.Method, s.inputs[r.Input].Name)
		}
		a := res.Attributions[k]
		over := s.imageFor(a, r.Input)
		if over < 0 {
			return nil, 0, &explain.RequestError{Err: fmt.Errorf("the attributions of input %s (shape %v) are not an image: ask /api/explain", s.inputs[r.Input].Name, a.Shape)}
		}
		b, err := s.heatMap(s.examples[i], a, over, r, s.title(c, res, ""), 360, 330)
		return b, len(b), err
	})
	if err != nil {
		return nil, err
	}
	return v.([]byte), nil
}

// title names a figure: the method, the target explained (a detector's
// box), and the part.
func (s *Server) title(c *checked, res *explain.Result, part string) string {
	t := c.Method + ", target " + s.targetName(res.Targets)
	if s.detector {
		d := s.dets[c.i][c.Model][c.Box]
		t = fmt.Sprintf("%s, box %d (%s %.2f)", c.Method, c.Box, s.className(d.Class), d.Score)
		if c.IoU {
			t += " × IoU"
		}
	}
	if part != "" {
		t = part + ": " + t
	}
	return t
}

// imageFor returns the image input an attribution map a ([1, C, h, w])
// can be drawn over: input k when it is an image, else the first image
// input; or -1 when a is not such a map or there is none.
func (s *Server) imageFor(a *tensor.Tensor, k int) int {
	if a.Rank() != 4 || a.Shape[0] != 1 {
		return -1
	}
	if k >= 0 && k < len(s.inputs) && s.inputs[k].Modality == Image {
		return k
	}
	for j, in := range s.inputs {
		if in.Modality == Image {
			return j
		}
	}
	return -1
}

// heatMap draws a map ([1, C, h, w]) over image input k's picture as a
// PNG of w x h pixels.
func (s *Server) heatMap(ex Example, a *tensor.Tensor, k int, r Request, title string, w, h int) ([]byte, error) {
	view := r.View
	if view == "" {
		view = viz.MethodBlendedHeatMap
	}
	fig, err := explain.Draw(explain.Example(a, 0), s.picture(ex, k), explain.Drawing{
		Views:   []viz.ImageView{{Method: view, Sign: r.Sign, Title: title}},
		Bare:    []viz.ImageView{{Method: viz.MethodHeatMap, Sign: r.Sign, Title: title}},
		Options: viz.ImageOptions{Sign: r.Sign, ColorBar: true, Width: w, Height: h},
	})
	if err != nil {
		return nil, err
	}
	return encodePNG(fig.PNG())
}

// targetName names the target of a one-example batch: its class, or its
// index tuple.
func (s *Server) targetName(targets [][]int) string {
	if len(targets) == 1 && len(targets[0]) == 1 {
		return s.className(targets[0][0])
	}
	return fmt.Sprint(targets)
}

// Explanation is one model's attributions on one example, for the page:
// a part per input (or one for a layer), each in its modality.
type Explanation struct {
	Model  string `json:"model"`
	Method string `json:"method"`
	Target string `json:"target"` // the class explained
	// Box is, for a detector, the box explained.
	Box   *Box   `json:"box,omitempty"`
	Parts []Part `json:"parts"`
}

// Part is the attributions of one input (or a layer).
type Part struct {
	Name     string   `json:"name"`
	Modality Modality `json:"modality"`
	// Total is the net contribution: the sum of the part's attributions.
	Total float64 `json:"total"`
	// Image is an image part's figure, a data: URL of a PNG.
	Image string `json:"image,omitempty"`
	// Tokens are a text part's tokens, each with its attribution (summed
	// over the embedding when the part is an embedding layer's).
	Tokens []Score `json:"tokens,omitempty"`
	// Features are a features part's values with their attributions: all
	// of them, or the maxFeatures largest in absolute value, in order.
	Features []Score `json:"features,omitempty"`
	// Omitted counts the features left out.
	Omitted int `json:"omitted,omitempty"`
}

// Score is one token or feature: its name, value and attribution.
type Score struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Score float64 `json:"score"`
}

// maxFeatures is the most features a part lists.
const maxFeatures = 48

// Explain computes (or finds in the cache) model r.Model's attributions on
// example i and draws every input in its modality. Errors as Attribution's.
func (s *Server) Explain(ctx context.Context, i int, r Request) (*Explanation, error) {
	r.Input = 0
	c, err := s.check(i, r)
	if err != nil {
		return nil, err
	}
	v, err := s.answer(ctx, c, "explain", func(res *explain.Result) (any, int, error) {
		e, err := s.explanation(c, res)
		if err != nil {
			return nil, 0, err
		}
		size := 256
		for _, p := range e.Parts {
			size += len(p.Image) + 64*(len(p.Tokens)+len(p.Features))
		}
		return e, size, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*Explanation), nil
}

// explanation draws a result's parts: one per attributed input when the
// result has one map of each input's shape, else one per map (a layer's).
func (s *Server) explanation(c *checked, res *explain.Result) (*Explanation, error) {
	ex := s.examples[c.i]
	e := &Explanation{Model: s.models[c.Model].Name, Method: c.Method, Target: s.targetName(res.Targets)}
	if s.detector {
		b := s.rows[c.i].Predictions[c.Model].Boxes[c.Box]
		e.Box = &b
	}
	perInput := len(res.Attributions) == len(ex.Inputs)
	for k, a := range res.Attributions {
		if perInput && a != nil && !tensor.SameShape(a.Shape, ex.Inputs[k].Shape) && s.inputs[k].Modality != Image {
			perInput = false
		}
	}
	for k, a := range res.Attributions {
		if a == nil {
			continue
		}
		if a.DType != tensor.Float32 || a.Rank() == 0 || a.Shape[0] != 1 {
			return nil, fmt.Errorf("attributions of shape %v (%s): want one example of floats", a.Shape, a.DType)
		}
		in, name := -1, "layer"
		if l := s.layerOf(c); l != "" {
			name = "layer " + l
		}
		if perInput {
			in, name = k, s.inputs[k].Name
		}
		p, err := s.part(ex, c, res, a, in, name)
		if err != nil {
			return nil, err
		}
		e.Parts = append(e.Parts, p)
	}
	if len(e.Parts) == 0 {
		return nil, fmt.Errorf("%s gives no attributions", c.Method)
	}
	return e, nil
}

// part draws one map a: of input k, or (k = -1) of a layer, shown as the
// input whose shape it fits.
func (s *Server) part(ex Example, c *checked, res *explain.Result, a *tensor.Tensor, k int, name string) (Part, error) {
	p := Part{Name: name, Modality: Features}
	for _, v := range a.F {
		p.Total += float64(v)
	}
	p.Total = finite(p.Total)
	if k >= 0 {
		p.Modality = s.inputs[k].Modality
	}
	text := -1
	switch {
	case p.Modality == Image || k < 0 && s.imageFor(a, -1) >= 0:
		over := s.imageFor(a, k)
		if over < 0 { // an image input whose map is not one
			break
		}
		b, err := s.heatMap(ex, a, over, c.Request, s.title(c, res, ""), 320, 290)
		if err != nil {
			return p, err
		}
		p.Modality, p.Image = Image, "data:image/png;base64,"+base64.StdEncoding.EncodeToString(b)
		return p, nil
	case p.Modality == Text:
		text = k
	case k < 0 && a.Rank() >= 2:
		// A layer's map over the positions of a text input: an embedding.
		for j, in := range s.inputs {
			if in.Modality == Text && ex.Inputs[j].Rank() == 2 && ex.Inputs[j].Shape[1] == a.Shape[1] {
				text = j
				break
			}
		}
	}
	if text >= 0 && a.Rank() >= 2 {
		p.Modality = Text
		x := ex.Inputs[text]
		n := a.Shape[1]
		per := a.Len() / n // summed over what follows the position
		var toks []string
		if text < len(ex.Tokens) && len(ex.Tokens[text]) == n {
			toks = ex.Tokens[text]
		}
		vocab := s.inputs[text].Vocabulary
		for j := 0; j < n; j++ {
			var sum float64
			for _, v := range a.F[j*per : (j+1)*per] {
				sum += float64(v)
			}
			sc := Score{Score: finite(sum)}
			if x.Len() == n {
				sc.Value = x.Float64At(j)
			}
			switch {
			case toks != nil:
				sc.Name = toks[j]
			case x.DType == tensor.Int64 && x.Len() == n && x.I[j] >= 0 && x.I[j] < int64(len(vocab)):
				sc.Name = vocab[x.I[j]]
			default:
				sc.Name = strconv.FormatFloat(sc.Value, 'g', 6, 64)
			}
			p.Tokens = append(p.Tokens, sc)
		}
		return p, nil
	}
	p.Modality = Features
	var names []string
	var x *tensor.Tensor
	if k >= 0 {
		names, x = s.inputs[k].Features, ex.Inputs[k]
		if x.Len() != a.Len() {
			x = nil
		}
	}
	idx := make([]int, a.Len())
	for j := range idx {
		idx[j] = j
	}
	if len(idx) > maxFeatures {
		sort.SliceStable(idx, func(u, v int) bool { return math.Abs(float64(a.F[idx[u]])) > math.Abs(float64(a.F[idx[v]])) })
		p.Omitted = len(idx) - maxFeatures
		idx = idx[:maxFeatures]
		sort.Ints(idx)
	}
	for _, j := range idx {
		sc := Score{Score: finite(float64(a.F[j]))}
		if x != nil {
			sc.Value = finite(x.Float64At(j))
		}
		if len(names) == a.Len() {
			sc.Name = names[j]
		} else {
			sc.Name = indexName(a.Shape[1:], j)
		}
		p.Features = append(p.Features, sc)
	}
	return p, nil
}

// indexName names flat index j of a tensor of a shape: [i,j,...].
func indexName(shape []int, j int) string {
	idx := make([]int, len(shape))
	for d := len(shape) - 1; d >= 0; d-- {
		if shape[d] > 0 {
			idx[d] = j % shape[d]
			j /= shape[d]
		}
	}
	return fmt.Sprint(idx)
}

// finite returns v, or 0 for NaN and infinities (which JSON cannot carry).
func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

// picture returns the image shown for image input k of an example: the
// example's Image for the first image input, else the input itself.
func (s *Server) picture(ex Example, k int) *tensor.Tensor {
	if k < 0 || k >= len(ex.Inputs) || s.inputs[k].Modality != Image {
		return nil
	}
	if ex.Image != nil {
		first := slices.IndexFunc(s.inputs, func(in Input) bool { return in.Modality == Image })
		if k == first {
			return ex.Image
		}
	}
	return normalized(explain.Picture(ex.Inputs[k], 0))
}

// Picture draws image input k of example i as PNG (upscaled to about 160
// pixels).
func (s *Server) Picture(i, k int) ([]byte, error) {
	if i < 0 || i >= len(s.examples) {
		return nil, fmt.Errorf("no example %d (there are %d)", i, len(s.examples))
	}
	img := s.picture(s.examples[i], k)
	if img == nil {
		return nil, fmt.Errorf("example %d has no image input %d", i, k)
	}
	pic, err := viz.Original(img, max(1, 160/max(img.Shape[1], img.Shape[2])))
	if err != nil {
		return nil, err
	}
	return encodePNG(pic)
}

// normalized scales an image whose values leave [0, 1] (a normalized
// model input) to its own range, so that it can be seen.
func normalized(img *tensor.Tensor) *tensor.Tensor {
	if img == nil {
		return nil
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range img.F {
		lo, hi = math.Min(lo, float64(v)), math.Max(hi, float64(v))
	}
	if lo >= 0 && hi <= 1 || !(hi > lo) {
		return img
	}
	out := tensor.New(img.Shape...)
	for i, v := range img.F {
		out.F[i] = float32((float64(v) - lo) / (hi - lo))
	}
	return out
}

// encodePNG encodes an image as PNG.
func encodePNG(img image.Image) ([]byte, error) {
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
