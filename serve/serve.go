// Package serve answers prediction and explanation requests over HTTP for
// ONNX models: the KServe V1 protocol (GET /v1/models/NAME, POST
// /v1/models/NAME:predict and :explain), the Open Inference Protocol's
// POST /v2/models/NAME/infer, and Prometheus metrics at /metrics. A
// Server is an http.Handler, to serve alone (loupe serve) or inside a
// service's own mux.
//
// # Explanations
//
// POST /v1/models/NAME:explain takes the prediction's body ("instances",
// one nested array per example, the model's input shape without the batch
// dimension; or, for models of several inputs, "inputs": {"name": [...a
// batch...]}) and:
//
//	"method"       any method loupe has, by Captum's name (default IntegratedGradients)
//	"target"       an output index for every example, one per example, "predicted" (default),
//	               "none" (models of one output per example), or the text loupe explain --target
//	               reads ("3", "1,4", "(0,2)" for outputs of more dimensions)
//	"params"       the method's parameters under Captum's names, {"n_steps": 20, "baselines": 0.0};
//	               baselines is a number or nested arrays (one example's shape, or a batch);
//	               "layer" names the layer of layer methods
//	"deadline_ms"  the request's deadline (default Config.Deadline)
//	"fit_deadline" true: lower n_steps, n_samples or nt_samples to fit the deadline
//	"explain_if"   {"min_probability": p, "max_probability": q}: explain only the
//	               examples whose predicted class has a softmax probability in [p, q]
//
// It answers {"model", "model_sha256", "method", "params" (every effective
// parameter), "explanations": [{"target", "prediction", "attributions",
// "delta"}], "elapsed_ms"}: one explanation per example, in order, with the
// attributions in the example's shape (an object by input name for models
// of several inputs) and the convergence delta of methods that have one.
// The prediction and the predicted target come from one forward pass,
// which the explanation reuses. The request means what it means to the
// command line and Insights: the method runs through internal/explain.
//
// The Open Inference Protocol defines no explanation (KServe's V2
// protocol has no explain endpoint): POST /v2/models/NAME/explain answers
// 404 naming the V1 route.
//
// # Limits
//
// Every request is bounded: the body's size (413), the examples per
// request and the elements of each input against the model's input shape
// (413, 400 naming the input and shape), the method's parameters
// (internal/methods' bounds; parameters that name files are refused; 400
// with the reason), the requests running at once and waiting (429 beyond
// Config.MaxQueue) and the time each takes (504 when its deadline passes
// or its client leaves; the work stops then). A method that panics gets
// 500 and gives its slot back; the server goes on.
//
// # Who may call
//
// Config.Token, when set, is a bearer token every request must show
// (Authorization: Bearer TOKEN; 401 otherwise), /metrics included. The
// Host header is not checked (services call the API by whatever name
// their network gives it), but requests that a browser sends for another
// site's page are refused (403): an Origin other than the server's own, a
// Sec-Fetch-Site other than same-origin or none, and a POST whose
// Content-Type is not JSON (what an HTML form can send without a
// preflight).
package serve

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/internal/httpguard"
	"github.com/loupe-ml/loupe/onnx"
	"github.com/loupe-ml/loupe/tensor"
)

// Config bounds a server's work and says who may call it. Zero values
// take the defaults.
type Config struct {
	// Token, if set, is the bearer token every request must show.
	Token string
	// MaxRunning is how many requests run a model at once (0: GOMAXPROCS).
	MaxRunning int
	// MaxQueue is how many more wait for a slot (0: 4×MaxRunning);
	// beyond it requests get 429 at once.
	MaxQueue int
	// MaxBodyBytes bounds a request's body (0: 16 MiB).
	MaxBodyBytes int64
	// MaxExamples bounds the examples of one request (0: 64).
	MaxExamples int
	// Deadline is a request's deadline when it gives none (0: 60 s),
	// waiting for a slot included.
	Deadline time.Duration
	// MaxDeadline is the longest deadline a request may ask for (0: 10
	// minutes).
	MaxDeadline time.Duration
}

func (c Config) withDefaults() Config {
	if c.MaxRunning <= 0 {
		c.MaxRunning = max(runtime.GOMAXPROCS(0), 1)
	}
	if c.MaxQueue <= 0 {
		c.MaxQueue = 4 * c.MaxRunning
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 16 << 20
	}
	if c.MaxExamples <= 0 {
		c.MaxExamples = 64
	}
	if c.Deadline <= 0 {
		c.Deadline = 60 * time.Second
	}
	if c.MaxDeadline <= 0 {
		c.MaxDeadline = 10 * time.Minute
	}
	c.Deadline = min(c.Deadline, c.MaxDeadline)
	return c
}

// Model is a model served under a name.
type Model struct {
	// Name is the model's name in URLs: letters, digits, '-', '_' and '.'.
	Name  string
	Model *engine.Model
	// SHA256 identifies the model in explanations (hex; LoadModel sets it
	// from the file).
	SHA256 string
}

// LoadModel reads an ONNX file as a Model of a name, with the SHA-256 of
// the file.
func LoadModel(name, path string) (Model, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Model{}, err
	}
	g, err := onnx.Parse(b)
	if err != nil {
		return Model{}, fmt.Errorf("%s: %w", path, err)
	}
	m, err := engine.Compile(g)
	if err != nil {
		return Model{}, fmt.Errorf("%s: %w", path, err)
	}
	sum := sha256.Sum256(b)
	return Model{Name: name, Model: m, SHA256: hex.EncodeToString(sum[:])}, nil
}

// model is a served model with what requests are checked against.
type model struct {
	Model
	inputs []engine.Input
	output string    // the output predicted and explained
	nt     *attr.Net // float inputs attributed, others extra; nil when none is float
	ntErr  error
}

// Server serves models (see the package's doc). It is an http.Handler.
type Server struct {
	cfg     Config
	models  map[string]*model
	names   []string
	token   *httpguard.Token // Config.Token's, nil without one
	slots   chan struct{}
	waiting atomic.Int64
	met     *metrics
	mux     *http.ServeMux

	// attribute runs a method: (*Server).runMethod, or a test's stand-in.
	attribute func(ctx context.Context, j *job) (*attr.Result, error)
}

// New returns a server for models.
func New(c Config, models ...Model) (*Server, error) {
	if len(models) == 0 {
		return nil, errors.New("serve: no models")
	}
	c = c.withDefaults()
	s := &Server{cfg: c, models: map[string]*model{}, slots: make(chan struct{}, c.MaxRunning), met: newMetrics()}
	s.attribute = s.runMethod
	if c.Token != "" {
		t := httpguard.NewToken(c.Token)
		s.token = &t
	}
	for _, m := range models {
		if !validName(m.Name) {
			return nil, fmt.Errorf("serve: model name %q: want letters, digits, '-', '_' and '.'", m.Name)
		}
		if s.models[m.Name] != nil {
			return nil, fmt.Errorf("serve: two models named %q", m.Name)
		}
		if m.Model == nil {
			return nil, fmt.Errorf("serve: model %q is nil", m.Name)
		}
		sm := &model{Model: m, inputs: m.Model.Inputs(), output: m.Model.OutputNames()[0]}
		var extra []string
		for _, in := range sm.inputs {
			if in.DType != tensor.Float32 {
				extra = append(extra, in.Name)
			}
		}
		sm.nt, sm.ntErr = attr.NewNet(m.Model, extra...)
		if sm.ntErr != nil {
			sm.nt = nil
		}
		s.models[m.Name] = sm
		s.names = append(s.names, m.Name)
	}
	slices.Sort(s.names)
	s.routes()
	return s, nil
}

func validName(n string) bool {
	if n == "" || len(n) > 128 {
		return false
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// NewHTTPServer returns an http.Server for a Server's handler, with
// timeouts on reading the request, writing the answer (the longest
// deadline and some) and idle connections.
func NewHTTPServer(h http.Handler, c Config) *http.Server {
	c = c.withDefaults()
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      c.MaxDeadline + 30*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
}

// ServeHTTP checks the token and the request's origin, then routes it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			writeError(w, http.StatusInternalServerError, fmt.Sprintf("internal error: %v", v))
		}
	}()
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	if !s.authorized(r) {
		h.Set("WWW-Authenticate", `Bearer realm="loupe serve"`)
		writeError(w, http.StatusUnauthorized, "unauthorized: send Authorization: Bearer <token>")
		return
	}
	if why := crossSite(r); why != "" {
		writeError(w, http.StatusForbidden, "forbidden: cross-site request ("+why+")")
		return
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) routes() {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.met.handler())
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"models": s.names})
	})
	mux.HandleFunc("GET /v1/models/{name}", func(w http.ResponseWriter, r *http.Request) {
		m := s.models[r.PathValue("name")]
		if m == nil {
			writeError(w, http.StatusNotFound, fmt.Sprintf("no model %s (serving %s)", httpguard.QuoteShort(r.PathValue("name")), strings.Join(s.names, ", ")))
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"name": m.Name, "ready": true})
	})
	mux.HandleFunc("POST /v1/models/{spec}", func(w http.ResponseWriter, r *http.Request) {
		name, verb, _ := strings.Cut(r.PathValue("spec"), ":")
		switch verb {
		case "predict", "explain":
			s.v1(w, r, name, verb)
		default:
			writeError(w, http.StatusNotFound, fmt.Sprintf("no route %s: want /v1/models/NAME:predict or :explain", httpguard.QuoteShort(r.URL.Path)))
		}
	})
	mux.HandleFunc("GET /v2/health/live", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"live": true})
	})
	mux.HandleFunc("GET /v2/health/ready", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"ready": true})
	})
	mux.HandleFunc("GET /v2/models/{name}", func(w http.ResponseWriter, r *http.Request) {
		if m := s.lookup(w, r.PathValue("name")); m != nil {
			writeJSON(w, http.StatusOK, m.v2Metadata())
		}
	})
	mux.HandleFunc("GET /v2/models/{name}/ready", func(w http.ResponseWriter, r *http.Request) {
		if m := s.lookup(w, r.PathValue("name")); m != nil {
			writeJSON(w, http.StatusOK, map[string]any{"name": m.Name, "ready": true})
		}
	})
	mux.HandleFunc("POST /v2/models/{name}/infer", func(w http.ResponseWriter, r *http.Request) { s.v2Infer(w, r, r.PathValue("name")) })
	mux.HandleFunc("POST /v2/models/{name}/explain", func(w http.ResponseWriter, r *http.Request) {
		if m := s.lookup(w, r.PathValue("name")); m != nil {
			writeError(w, http.StatusNotFound, fmt.Sprintf("the Open Inference Protocol has no explain endpoint: POST /v1/models/%s:explain", m.Name))
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no route %s %s", r.Method, httpguard.QuoteShort(r.URL.Path)))
	})
	s.mux = mux
}

// lookup returns a served model, or answers 404.
func (s *Server) lookup(w http.ResponseWriter, name string) *model {
	m := s.models[name]
	if m == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no model %s (serving %s)", httpguard.QuoteShort(name), strings.Join(s.names, ", ")))
	}
	return m
}

// httpError is an error with its HTTP status and the reason counted in
// the failure metric.
type httpError struct {
	code   int
	reason string
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, a ...any) *httpError {
	return &httpError{http.StatusBadRequest, "bad_request", fmt.Sprintf(format, a...)}
}

func tooLarge(format string, a ...any) *httpError {
	return &httpError{http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf(format, a...)}
}

// ErrBusy is the error of a request refused because the queue is full.
var ErrBusy = errors.New("too many requests waiting: try again later")

// PanicError is the error of a request whose model or method panicked:
// a bug, answered with 500 while the server goes on.
type PanicError struct {
	Value any    // what was passed to panic
	Stack []byte // the goroutine's stack when it panicked
}

func (e *PanicError) Error() string { return fmt.Sprintf("internal error: %v", e.Value) }

// decode reads a JSON body of at most MaxBodyBytes into v, refusing
// unknown fields.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) error {
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	d := json.NewDecoder(body)
	d.DisallowUnknownFields()
	err := d.Decode(v)
	if err == nil {
		if _, err2 := d.Token(); err2 != io.EOF {
			err = errors.New("data after the JSON object")
		}
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return tooLarge("request body over %d bytes", mbe.Limit)
	case err != nil:
		return badRequest("bad JSON: %v", err)
	}
	return nil
}

// deadline returns a request's deadline: its deadline_ms, or the
// server's default.
func (s *Server) deadline(ms *int64) (time.Duration, error) {
	if ms == nil {
		return s.cfg.Deadline, nil
	}
	if *ms <= 0 {
		return 0, badRequest("deadline_ms=%d: want a positive number of milliseconds", *ms)
	}
	d := time.Duration(*ms) * time.Millisecond
	if *ms > int64(s.cfg.MaxDeadline/time.Millisecond) {
		return 0, badRequest("deadline_ms=%d: want at most %d", *ms, s.cfg.MaxDeadline.Milliseconds())
	}
	return d, nil
}

// do runs work in a slot, on its own goroutine, and waits for it until
// ctx is done: the answer is then a deadline error at once, while the work
// (which watches ctx) stops and gives its slot back. A panic in work
// becomes a *PanicError, its slot given back.
func (s *Server) do(ctx context.Context, work func(ctx context.Context) (any, error)) (any, error) {
	if s.waiting.Add(1) > int64(s.cfg.MaxQueue) {
		s.waiting.Add(-1)
		return nil, ErrBusy
	}
	s.met.queue.Inc()
	select {
	case s.slots <- struct{}{}:
		s.waiting.Add(-1)
		s.met.queue.Dec()
	case <-ctx.Done():
		s.waiting.Add(-1)
		s.met.queue.Dec()
		return nil, ctx.Err()
	}
	type answer struct {
		v   any
		err error
	}
	done := make(chan answer, 1)
	s.met.running.Inc()
	go func() {
		defer func() {
			if v := recover(); v != nil {
				done <- answer{err: &PanicError{Value: v, Stack: debug.Stack()}}
			}
			s.met.running.Dec()
			<-s.slots
		}()
		v, err := work(ctx)
		done <- answer{v, err}
	}()
	select {
	case a := <-done:
		return a.v, a.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// failure is an error as an HTTP status, message and reason.
func failure(err error, deadline time.Duration) (int, string, string) {
	var he *httpError
	var pe *PanicError
	switch {
	case errors.As(err, &he):
		return he.code, he.msg, he.reason
	case errors.As(err, &pe):
		return http.StatusInternalServerError, pe.Error(), "panic"
	case errors.Is(err, ErrBusy):
		return http.StatusTooManyRequests, err.Error(), "busy"
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, fmt.Sprintf("deadline of %v passed: stopped (ask for less work, or a later deadline_ms)", deadline), "deadline"
	case errors.Is(err, context.Canceled):
		return http.StatusGatewayTimeout, "the request was cancelled (its client left)", "cancelled"
	}
	return http.StatusInternalServerError, err.Error(), "error"
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, code int, msg string) {
	b, _ := json.Marshal(map[string]string{"error": msg})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// exchange is a request on a model's route under way: what the metrics
// count of it when it ends, its deadline, its failure answered.
type exchange struct {
	s                   *Server
	w                   http.ResponseWriter
	start               time.Time
	name, route, method string
	deadline            time.Duration
	code                int
	reason              string
}

// begin starts an exchange on model name's route and reads the body into
// req. The model is nil when the exchange is answered already (no such
// model, a body that does not read). Call end when it is answered.
func (s *Server) begin(w http.ResponseWriter, r *http.Request, name, route string, req any) (*exchange, *model) {
	x := &exchange{s: s, w: w, start: time.Now(), name: name, route: route, code: http.StatusOK}
	m := s.lookup(w, name)
	if m == nil {
		x.code, x.reason = http.StatusNotFound, "not_found"
		return x, nil
	}
	if err := s.decode(w, r, req); err != nil {
		x.fail(err)
		return x, nil
	}
	return x, m
}

// fail answers an error with its status and counts its reason.
func (x *exchange) fail(err error) {
	var msg string
	x.code, msg, x.reason = failure(err, x.deadline)
	writeError(x.w, x.code, msg)
}

// end counts the exchange in the metrics.
func (x *exchange) end() { x.s.observe(x.name, x.route, x.method, x.start, x.code, x.reason) }

// observe counts a finished request in the metrics.
func (s *Server) observe(model, route, method string, start time.Time, code int, reason string) {
	if s.models[model] == nil {
		model = ""
	}
	s.met.requests.WithLabelValues(model, route, method, fmt.Sprint(code)).Inc()
	s.met.latency.WithLabelValues(model, route, method).Observe(time.Since(start).Seconds())
	if reason != "" {
		s.met.failures.WithLabelValues(model, route, method, reason).Inc()
	}
}
