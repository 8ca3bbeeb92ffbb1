// Package insights serves loupe Insights: a web app to browse a data set's
// predictions and their attributions. It shows each example with its true
// and predicted class, filters by class and by right or wrong, and draws
// the attributions of any method, with its arguments, target and sign,
// computed on demand and cached.
package insights

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"image"
	"image/png"
	"math"
	"net/http"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/internal/explain"
	"github.com/loupe-ml/loupe/internal/methods"
	"github.com/loupe-ml/loupe/tensor"
	"github.com/loupe-ml/loupe/viz"
)

// Example is one item of the data set.
type Example struct {
	// ID names the example (a file name, say).
	ID string
	// Inputs are the model's attributed inputs, each with a batch
	// dimension of 1.
	Inputs []*tensor.Tensor
	// Image is the picture shown, [C, H, W] with values in [0, 1]; nil
	// uses Inputs[0] when it is an image of 1 or 3 channels.
	Image *tensor.Tensor
	// Label is the true class, or -1 when unknown.
	Label int
}

// Server holds a model, its data set and their predictions, and serves
// the app (Handler).
type Server struct {
	nt       *attr.Net
	classes  []string
	examples []Example
	preds    []Prediction
	sem      chan struct{} // bounds concurrent attributions
	waiting  atomic.Int64  // requests waiting for a slot

	// run computes attributions: explain.Run, or a test's stand-in.
	run func(ctx context.Context, nt *attr.Net, inputs []*tensor.Tensor, r explain.Request) (*explain.Result, error)

	mu    sync.Mutex
	cache map[string][]byte // PNG figures by request (a SHA-256 of it)
	order []string          // cache keys, oldest first
}

// Prediction is the model's answer on one example.
type Prediction struct {
	Index       int     `json:"index"`
	ID          string  `json:"id"`
	Label       int     `json:"label"`
	LabelName   string  `json:"label_name"`
	Predicted   int     `json:"predicted"`
	Name        string  `json:"predicted_name"`
	Probability float64 `json:"probability"`
	Correct     *bool   `json:"correct"` // nil when the label is unknown
}

// maxCache is the number of attribution figures kept.
const maxCache = 512

// New runs the model on every example (progress, if set, after each) and
// returns a server for them. classes names the model's outputs; when it is
// shorter than the output, classes are shown by number.
func New(ctx context.Context, nt *attr.Net, classes []string, examples []Example, progress func(done, total int)) (*Server, error) {
	if nt == nil {
		return nil, errors.New("insights: no model")
	}
	if len(examples) == 0 {
		return nil, errors.New("insights: no examples")
	}
	s := &Server{nt: nt, classes: classes, examples: examples, cache: map[string][]byte{},
		sem: make(chan struct{}, max(runtime.GOMAXPROCS(0), 1)), run: explain.Run}
	for i, ex := range examples {
		if len(ex.Inputs) != len(nt.Inputs) {
			return nil, fmt.Errorf("insights: example %d (%s) has %d inputs, the model takes %d (%s)", i, ex.ID, len(ex.Inputs), len(nt.Inputs), strings.Join(nt.Inputs, ", "))
		}
	}
	// Run the model on runs of up to predictBatch examples of one shape.
	for lo := 0; lo < len(examples); {
		hi := lo + 1
		for hi < len(examples) && hi-lo < predictBatch && sameShapes(examples[lo].Inputs, examples[hi].Inputs) {
			hi++
		}
		top, prob, err := s.predict(ctx, examples[lo:hi])
		if err != nil && hi-lo > 1 {
			hi = lo + 1 // find the example at fault
			top, prob, err = s.predict(ctx, examples[lo:hi])
		}
		if err != nil {
			return nil, fmt.Errorf("insights: example %d (%s): %w", lo, examples[lo].ID, err)
		}
		for k, ex := range examples[lo:hi] {
			p := Prediction{Index: lo + k, ID: ex.ID, Label: ex.Label, Predicted: top[k], Probability: prob[k]}
			p.Name = s.className(p.Predicted)
			if ex.Label >= 0 {
				c := ex.Label == p.Predicted
				p.Correct = &c
				p.LabelName = s.className(ex.Label)
			}
			s.preds = append(s.preds, p)
			if progress != nil {
				progress(lo+k+1, len(examples))
			}
		}
		lo = hi
	}
	return s, nil
}

// predictBatch is the most examples New runs the model on at once.
const predictBatch = 32

// predict runs the model on examples of one shape, stacked into a batch.
func (s *Server) predict(ctx context.Context, exs []Example) ([]int, []float64, error) {
	inputs := make([]*tensor.Tensor, len(exs[0].Inputs))
	for k := range inputs {
		parts := make([]*tensor.Tensor, len(exs))
		for j, ex := range exs {
			parts[j] = ex.Inputs[k]
		}
		inputs[k] = stack(parts)
	}
	y, err := s.nt.Eval(ctx, inputs)
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

// Predictions returns the predictions that pass a filter: class (-1: any)
// matches the true or, for unlabelled examples, the predicted class;
// correct is "", "right" or "wrong".
func (s *Server) Predictions(class int, correct string) ([]Prediction, error) {
	switch correct {
	case "", "right", "wrong":
	default:
		return nil, fmt.Errorf("filter %q: want right or wrong", correct)
	}
	var out []Prediction
	for _, p := range s.preds {
		c := p.Label
		if c < 0 {
			c = p.Predicted
		}
		if class >= 0 && c != class {
			continue
		}
		if correct != "" && (p.Correct == nil || *p.Correct != (correct == "right")) {
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// Summary counts the predictions: all, labelled, right, and per class
// (by true class, or predicted class when unlabelled) how many and how
// many right.
type Summary struct {
	Examples int            `json:"examples"`
	Labelled int            `json:"labelled"`
	Right    int            `json:"right"`
	Classes  []ClassSummary `json:"classes"`
}

// ClassSummary is one class's line of a Summary.
type ClassSummary struct {
	Name     string `json:"name"`
	Examples int    `json:"examples"`
	Right    int    `json:"right"`
}

// Summary counts the server's predictions.
func (s *Server) Summary() Summary {
	sum := Summary{Examples: len(s.preds)}
	n := len(s.classes)
	for _, p := range s.preds {
		n = max(n, p.Predicted+1, p.Label+1)
	}
	sum.Classes = make([]ClassSummary, n)
	for i := range sum.Classes {
		sum.Classes[i].Name = s.className(i)
	}
	for _, p := range s.preds {
		c := p.Label
		if c < 0 {
			c = p.Predicted
		} else {
			sum.Labelled++
		}
		sum.Classes[c].Examples++
		if p.Correct != nil && *p.Correct {
			sum.Right++
			sum.Classes[c].Right++
		}
	}
	return sum
}

// Request is what to draw for one example.
type Request struct {
	Method string
	Params []string // name=value, overlaid on the method's defaults
	Layer  string
	// Target is the output explained, in the command line's syntax (a
	// class number, or pred); "" is the predicted class.
	Target string
	Sign   viz.Sign
	// View is a viz image method; "" is blended_heat_map (heat_map for
	// inputs that are not images).
	View string
}

// key names a request on example i in the cache: a hash of the example,
// the method, its parameters as resolved (so that the order and repeats
// of the request's parameters do not matter) and the drawing's options.
func (r Request) key(i int, vals methods.Values) string {
	names := make([]string, 0, len(vals))
	for n := range vals {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	fmt.Fprintf(h, "%d\x00%s\x00%s\x00%s\x00%d\x00%s", i, r.Method, r.Layer, r.Target, r.Sign, r.View)
	for _, n := range names {
		fmt.Fprintf(h, "\x00%s=%s", n, vals[n])
	}
	return hex.EncodeToString(h.Sum(nil))
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

// Attribution draws the attributions of example i as a PNG figure, from
// the cache when it was drawn before. The method and its parameters are
// checked first (parameters that name files are refused: see
// methods.NoFiles; numbers must lie in their bounds: methods.Bound), with
// errors that are explain.RequestErrors. At most GOMAXPROCS attributions
// run at once; the others wait for a slot until ctx is done. A method that
// panics gives a *PanicError, and its slot back.
func (s *Server) Attribution(ctx context.Context, i int, r Request) ([]byte, error) {
	if i < 0 || i >= len(s.examples) {
		return nil, &explain.RequestError{Err: fmt.Errorf("no example %d (there are %d)", i, len(s.examples))}
	}
	spec, ok := methods.Lookup(r.Method)
	if !ok {
		return nil, &explain.RequestError{Err: fmt.Errorf("%w %q", explain.ErrUnknownMethod, r.Method)}
	}
	vals, err := methods.Resolve(r.Method, spec, r.Params, methods.NoFiles())
	if err != nil {
		return nil, &explain.RequestError{Err: err}
	}
	key := r.key(i, vals)
	s.mu.Lock()
	b, ok := s.cache[key]
	s.mu.Unlock()
	if ok {
		return b, nil
	}
	// The predicted class is known since start-up: no model call to find it.
	target := explain.Class(s.preds[i].Predicted)
	if r.Target != "" {
		if target, err = explain.ParseTarget(r.Target); err != nil {
			return nil, &explain.RequestError{Err: err}
		}
	}
	png, err := s.draw(ctx, s.examples[i], r, target)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if _, ok := s.cache[key]; !ok {
		s.cache[key] = png
		s.order = append(s.order, key)
		if len(s.order) > maxCache {
			delete(s.cache, s.order[0])
			s.order = s.order[1:]
		}
	}
	s.mu.Unlock()
	return png, nil
}

// draw computes and draws an attribution in a slot, which it always gives
// back; a panic becomes a *PanicError.
func (s *Server) draw(ctx context.Context, ex Example, r Request, target explain.Target) (png []byte, err error) {
	if s.waiting.Add(1) > maxWaiting {
		s.waiting.Add(-1)
		return nil, ErrBusy
	}
	select {
	case s.sem <- struct{}{}:
		s.waiting.Add(-1)
	case <-ctx.Done():
		s.waiting.Add(-1)
		return nil, ctx.Err()
	}
	defer func() { <-s.sem }()
	defer func() {
		if v := recover(); v != nil {
			png, err = nil, &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res, err := s.run(ctx, s.nt, ex.Inputs, explain.Request{Method: r.Method, Params: r.Params, Layer: r.Layer, Target: target})
	if err != nil {
		return nil, err
	}
	fig, err := s.figure(ex, res, r)
	if err != nil {
		return nil, err
	}
	return encodePNG(fig.PNG())
}

// figure draws the attribution map of an example's first input ([1, C, H,
// W], [1, H, W] or a coarser map, upsampled) over its picture: one view,
// titled with the method and the class explained.
func (s *Server) figure(ex Example, res *explain.Result, r Request) (*viz.Figure, error) {
	a := res.Attributions[0]
	if a == nil || a.Shape[0] != 1 {
		return nil, errors.New("no attributions for this input")
	}
	view := r.View
	if view == "" {
		view = viz.MethodBlendedHeatMap
	}
	title := r.Method + ", target " + s.targetName(res.Targets)
	return explain.Draw(explain.Example(a, 0), s.picture(ex), explain.Drawing{
		Views:   []viz.ImageView{{Method: view, Sign: r.Sign, Title: title}},
		Bare:    []viz.ImageView{{Method: viz.MethodHeatMap, Sign: r.Sign, Title: title}},
		Options: viz.ImageOptions{Sign: r.Sign, ColorBar: true, Width: 360, Height: 330},
	})
}

// targetName names the target of a one-example batch: its class, or its
// index tuple.
func (s *Server) targetName(targets [][]int) string {
	if len(targets) == 1 && len(targets[0]) == 1 {
		return s.className(targets[0][0])
	}
	return fmt.Sprint(targets)
}

// picture returns the image shown for an example, or nil.
func (s *Server) picture(ex Example) *tensor.Tensor {
	if ex.Image != nil {
		return ex.Image
	}
	if len(ex.Inputs) == 0 {
		return nil
	}
	if x := ex.Inputs[0]; x.Rank() == 4 && x.Shape[0] == 1 {
		return explain.Picture(x, 0)
	}
	return nil
}

// Picture draws example i's image as PNG (upscaled to about 160 pixels).
func (s *Server) Picture(i int) ([]byte, error) {
	if i < 0 || i >= len(s.examples) {
		return nil, fmt.Errorf("no example %d (there are %d)", i, len(s.examples))
	}
	img := s.picture(s.examples[i])
	if img == nil {
		return nil, fmt.Errorf("example %d is not an image", i)
	}
	pic, err := viz.Original(normalized(img), max(1, 160/max(img.Shape[1], img.Shape[2])))
	if err != nil {
		return nil, err
	}
	return encodePNG(pic)
}

// normalized scales an image whose values leave [0, 1] (a normalized
// model input) to its own range, so that it can be seen.
func normalized(img *tensor.Tensor) *tensor.Tensor {
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

//go:embed page.html page.js page.css
var pageFS embed.FS

var page = template.Must(template.ParseFS(pageFS, "page.html"))

// paramInfo is a method's parameter as the page lists it.
type paramInfo struct {
	Name    string `json:"name"`
	Default string `json:"default"`
	Doc     string `json:"doc"`
}

// methodInfo is a method as the page lists it.
type methodInfo struct {
	Name   string      `json:"name"`
	Doc    string      `json:"doc"`
	Layer  bool        `json:"layer"`
	Params []paramInfo `json:"params"`
}

// Handler returns the app, behind Config's checks: the page at / (its
// script and style at /page.js and /page.css), and under /api/ the
// predictions (JSON, filtered by ?class= and ?correct=right|wrong), their
// summary, the methods (JSON), each example's picture (/api/picture?i=) and its
// attributions (/api/attribution?i=&method=&param=name=value&target=&sign=&view=&layer=;
// target as the command line takes it, the predicted class when absent).
//
// Every route, the page and pictures included, needs the token (401
// without it); a Host that does not name the server and a request from
// another site's page get 403; a URL over a few KB gets 414; every
// response carries a Content-Security-Policy, X-Content-Type-Options:
// nosniff and Referrer-Policy: no-referrer. An attribution's errors in
// the request (an unknown method, a parameter out of its bounds or naming
// a file) get 400, a panic in the method 500, a method over its timeout
// 503. Serve it with NewHTTPServer's timeouts.
func (s *Server) Handler(c Config) (http.Handler, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		sum := s.Summary()
		var classes []string
		for _, c := range sum.Classes {
			classes = append(classes, c.Name)
		}
		var b bytes.Buffer
		if err := page.Execute(&b, map[string]any{"Classes": classes, "Summary": sum, "Signs": []string{"positive", "absolute_value", "negative", "all"}, "Views": viz.ImageMethods()}); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(b.Bytes())
	})
	for name, ctype := range map[string]string{"page.js": "text/javascript; charset=utf-8", "page.css": "text/css; charset=utf-8"} {
		b, err := pageFS.ReadFile(name)
		if err != nil {
			return nil, err
		}
		mux.HandleFunc("GET /"+name, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", ctype)
			w.Write(b)
		})
	}
	mux.HandleFunc("GET /api/examples", func(w http.ResponseWriter, r *http.Request) {
		class := -1
		if c := r.URL.Query().Get("class"); c != "" {
			v, err := strconv.Atoi(c)
			if err != nil {
				http.Error(w, fmt.Sprintf("class %q: want a class number", c), http.StatusBadRequest)
				return
			}
			class = v
		}
		ps, err := s.Predictions(class, r.URL.Query().Get("correct"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeJSON(w, ps)
	})
	mux.HandleFunc("GET /api/summary", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.Summary()) })
	mux.HandleFunc("GET /api/methods", func(w http.ResponseWriter, r *http.Request) {
		var out []methodInfo
		for _, name := range methods.Names() {
			m, _ := methods.Lookup(name)
			mi := methodInfo{Name: name, Doc: m.Doc, Layer: m.Layer}
			for _, p := range m.Params {
				if methods.IsFile(p) {
					continue // refused over HTTP
				}
				mi.Params = append(mi.Params, paramInfo{p.Name, p.Default, p.Doc})
			}
			out = append(out, mi)
		}
		writeJSON(w, out)
	})
	mux.HandleFunc("GET /api/picture", func(w http.ResponseWriter, r *http.Request) {
		i, err := strconv.Atoi(r.URL.Query().Get("i"))
		if err != nil {
			http.Error(w, "i: want an example number", http.StatusBadRequest)
			return
		}
		b, err := s.Picture(i)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		w.Write(b)
	})
	timeout := c.timeout()
	mux.HandleFunc("GET /api/attribution", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		i, err := strconv.Atoi(q.Get("i"))
		if err != nil {
			http.Error(w, "i: want an example number", http.StatusBadRequest)
			return
		}
		req := Request{Method: q.Get("method"), Params: q["param"], Layer: q.Get("layer"), Target: q.Get("target"), View: q.Get("view")}
		if req.Sign, err = viz.ParseSign(q.Get("sign")); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		// The request's context ends when its client leaves; the
		// attribution's also at its timeout.
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		b, err := s.Attribution(ctx, i, req)
		if err != nil {
			msg, code := attributionError(err, timeout)
			http.Error(w, msg, code)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		w.Write(b)
	})
	return newGuard(mux, c)
}

// attributionError is an attribution's error as an HTTP answer: its
// message and status.
func attributionError(err error, timeout time.Duration) (string, int) {
	var re *explain.RequestError
	var pe *PanicError
	switch {
	case errors.As(err, &re):
		return err.Error(), http.StatusBadRequest
	case errors.As(err, &pe):
		return pe.Error(), http.StatusInternalServerError
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("the attribution took more than %v: stopped (ask for less work: fewer steps or samples, a coarser feature grid)", timeout), http.StatusServiceUnavailable
	case errors.Is(err, context.Canceled):
		return "the attribution was cancelled", http.StatusServiceUnavailable
	case errors.Is(err, ErrBusy):
		return err.Error(), http.StatusServiceUnavailable
	}
	return err.Error(), http.StatusBadRequest
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

// encodePNG encodes an image as PNG.
func encodePNG(img image.Image) ([]byte, error) {
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
