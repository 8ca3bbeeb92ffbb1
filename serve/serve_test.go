package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/internal/testmodels"
	"github.com/loupe-ml/loupe/tensor"
)

// newTestServer serves cnn (cnn_s0.onnx), toy and mm (multimodal_s0.onnx).
func newTestServer(t testing.TB, c Config) *Server {
	t.Helper()
	var ms []Model
	for name, file := range map[string]string{"cnn": "cnn_s0.onnx", "toy": "toy.onnx", "mm": "multimodal_s0.onnx"} {
		m, err := LoadModel(name, testmodels.Path(file))
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	s, err := New(c, ms...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// call sends a JSON request to h and returns the status and decoded body.
func call(t testing.TB, h http.Handler, method, path string, body any, header ...string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req := httptest.NewRequest(method, path, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	var out map[string]any
	if strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, w.Body.String())
		}
	}
	return w.Code, out
}

// image returns a [3, 32, 32] example as nested arrays.
func image(seed int) [][][]float64 {
	x := make([][][]float64, 3)
	for c := range x {
		x[c] = make([][]float64, 32)
		for i := range x[c] {
			x[c][i] = make([]float64, 32)
			for j := range x[c][i] {
				x[c][i][j] = math.Sin(float64(seed*1000+c*97+i*31+j) * 0.37)
			}
		}
	}
	return x
}

// flatOf flattens an image.
func flatOf(x [][][]float64) []float32 {
	var out []float32
	for _, c := range x {
		for _, r := range c {
			for _, v := range r {
				out = append(out, float32(v))
			}
		}
	}
	return out
}

// floats flattens a decoded JSON value of nested arrays.
func floats(v any) []float64 {
	switch x := v.(type) {
	case float64:
		return []float64{x}
	case []any:
		var out []float64
		for _, e := range x {
			out = append(out, floats(e)...)
		}
		return out
	}
	return nil
}

func TestRoutes(t *testing.T) {
	s := newTestServer(t, Config{})
	code, body := call(t, s, "GET", "/v1/models/cnn", nil)
	if code != 200 || body["name"] != "cnn" || body["ready"] != true {
		t.Fatalf("metadata: %d %v", code, body)
	}
	code, body = call(t, s, "POST", "/v1/models/cnn:predict", map[string]any{"instances": [][][][]float64{image(1), image(2)}})
	if code != 200 {
		t.Fatalf("predict: %d %v", code, body)
	}
	preds := body["predictions"].([]any)
	if len(preds) != 2 || len(preds[0].([]any)) != 10 {
		t.Fatalf("predictions: %v", preds)
	}
	// The predictions are the model's.
	m, _ := engine.Load(testmodels.Path("cnn_s0.onnx"))
	nt, _ := attr.NewNet(m)
	x, _ := tensor.FromFloat32(append(flatOf(image(1)), flatOf(image(2))...), 2, 3, 32, 32)
	y, err := nt.Eval(context.Background(), []*tensor.Tensor{x})
	if err != nil {
		t.Fatal(err)
	}
	got := append(floats(preds[0]), floats(preds[1])...)
	for i, v := range y.F {
		if float32(got[i]) != v {
			t.Fatalf("prediction %d: %v, the model %v", i, got[i], v)
		}
	}
	// Open Inference Protocol.
	code, body = call(t, s, "POST", "/v2/models/cnn/infer", map[string]any{"id": "a", "inputs": []map[string]any{
		{"name": "input", "shape": []int{2, 3, 32, 32}, "datatype": "FP32", "data": append(flatOf(image(1)), flatOf(image(2))...)}}})
	if code != 200 || body["id"] != "a" {
		t.Fatalf("infer: %d %v", code, body)
	}
	out := body["outputs"].([]any)[0].(map[string]any)
	if out["name"] != "output" || out["datatype"] != "FP32" || fmt.Sprint(out["shape"]) != "[2 10]" {
		t.Fatalf("infer output: %v", out)
	}
	for i, v := range floats(out["data"]) {
		if float32(v) != y.F[i] {
			t.Fatalf("infer %d: %v, the model %v", i, v, y.F[i])
		}
	}
	for _, p := range []string{"/v2/models/cnn", "/v2/models/cnn/ready", "/v2/health/ready", "/v2/health/live", "/v1/models"} {
		if code, body := call(t, s, "GET", p, nil); code != 200 {
			t.Errorf("%s: %d %v", p, code, body)
		}
	}
	// Models of several inputs.
	img := [][][]float64{make([][]float64, 8)}
	for i := range img[0] {
		img[0][i] = []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, float64(i)}
	}
	code, body = call(t, s, "POST", "/v1/models/mm:predict", map[string]any{"inputs": map[string]any{
		"image": [][][][]float64{img}, "tabular": [][]float64{{1, 2, 3, 4, 5}}}})
	if code != 200 {
		t.Fatalf("mm predict: %d %v", code, body)
	}
	code, body = call(t, s, "POST", "/v1/models/mm:explain", map[string]any{"method": "Saliency", "inputs": map[string]any{
		"image": [][][][]float64{img}, "tabular": [][]float64{{1, 2, 3, 4, 5}}}})
	if code != 200 {
		t.Fatalf("mm explain: %d %v", code, body)
	}
	a := body["explanations"].([]any)[0].(map[string]any)["attributions"].(map[string]any)
	if len(floats(a["image"])) != 64 || len(floats(a["tabular"])) != 5 {
		t.Fatalf("mm attributions: %v", a)
	}
	// Metrics.
	req := httptest.NewRequest("GET", "/metrics", nil)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	for _, want := range []string{`loupe_requests_total{code="200",method="",model="cnn",route="predict"} 1`, `loupe_request_duration_seconds_bucket{method="Saliency",model="mm",route="explain"`, "loupe_queue_length 0"} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestExplainMatchesAttr checks the attributions, targets and deltas
// against calling attr directly.
func TestExplainMatchesAttr(t *testing.T) {
	s := newTestServer(t, Config{})
	m, _ := engine.Load(testmodels.Path("cnn_s0.onnx"))
	nt, _ := attr.NewNet(m)
	x, _ := tensor.FromFloat32(append(flatOf(image(3)), flatOf(image(4))...), 2, 3, 32, 32)
	y, _ := nt.Eval(context.Background(), []*tensor.Tensor{x})
	top, _, _ := attr.TopClasses(y)
	ctx := context.Background()

	ig := &attr.IntegratedGradients{Net: nt, NSteps: 20}
	want, err := ig.Attribute(ctx, []*tensor.Tensor{x}, attr.Options{Target: attr.Classes(top...), Baselines: []*tensor.Tensor{tensor.Scalar(0.5)}, Delta: true})
	if err != nil {
		t.Fatal(err)
	}
	code, body := call(t, s, "POST", "/v1/models/cnn:explain", map[string]any{"instances": [][][][]float64{image(3), image(4)},
		"method": "IntegratedGradients", "params": map[string]any{"n_steps": 20, "baselines": 0.5}})
	if code != 200 {
		t.Fatalf("explain: %d %v", code, body)
	}
	if body["model"] != "cnn" || len(body["model_sha256"].(string)) != 64 || body["method"] != "IntegratedGradients" {
		t.Errorf("answer: %v", body)
	}
	p := body["params"].(map[string]any)
	if p["n_steps"] != 20.0 || p["method"] != "gausslegendre" || p["baselines"] != 0.5 || p["internal_batch_size"] != 0.0 {
		t.Errorf("params: %v", p)
	}
	exs := body["explanations"].([]any)
	for e, ex := range exs {
		x := ex.(map[string]any)
		if int(x["target"].(float64)) != top[e] {
			t.Errorf("example %d: target %v, want %d", e, x["target"], top[e])
		}
		a := floats(x["attributions"])
		if len(a) != 3*32*32 {
			t.Fatalf("example %d: %d attributions", e, len(a))
		}
		for i, v := range a {
			if float32(v) != want.Attributions[0].F[e*3072+i] {
				t.Fatalf("example %d attribution %d: %v, attr %v", e, i, v, want.Attributions[0].F[e*3072+i])
			}
		}
		if d := x["delta"].(float64); float32(d) != want.Delta.F[e] {
			t.Errorf("example %d: delta %v, attr %v", e, d, want.Delta.F[e])
		}
		if len(floats(x["prediction"])) != 10 {
			t.Errorf("example %d: prediction %v", e, x["prediction"])
		}
	}

	// A target per example, and nested-array baselines.
	base := image(9)
	bt, _ := tensor.FromFloat32(flatOf(base), 1, 3, 32, 32)
	sal, err := (&attr.InputXGradient{Net: nt}).Attribute(ctx, []*tensor.Tensor{x}, attr.Options{Target: attr.Classes(3, 7)})
	if err != nil {
		t.Fatal(err)
	}
	code, body = call(t, s, "POST", "/v1/models/cnn:explain", map[string]any{"instances": [][][][]float64{image(3), image(4)},
		"method": "InputXGradient", "target": []int{3, 7}})
	if code != 200 {
		t.Fatalf("explain: %d %v", code, body)
	}
	for e, ex := range body["explanations"].([]any) {
		a := floats(ex.(map[string]any)["attributions"])
		for i, v := range a {
			if float32(v) != sal.Attributions[0].F[e*3072+i] {
				t.Fatalf("InputXGradient example %d attribution %d: %v, attr %v", e, i, v, sal.Attributions[0].F[e*3072+i])
			}
		}
	}
	dl, err := (&attr.DeepLift{Net: nt}).Attribute(ctx, []*tensor.Tensor{x}, attr.Options{Target: attr.Class(2), Baselines: []*tensor.Tensor{bt}})
	if err != nil {
		t.Fatal(err)
	}
	code, body = call(t, s, "POST", "/v1/models/cnn:explain", map[string]any{"instances": [][][][]float64{image(3), image(4)},
		"method": "DeepLift", "target": 2, "params": map[string]any{"baselines": base}})
	if code != 200 {
		t.Fatalf("explain: %d %v", code, body)
	}
	for e, ex := range body["explanations"].([]any) {
		a := floats(ex.(map[string]any)["attributions"])
		for i, v := range a {
			if float32(v) != dl.Attributions[0].F[e*3072+i] {
				t.Fatalf("DeepLift example %d attribution %d: %v, attr %v", e, i, v, dl.Attributions[0].F[e*3072+i])
			}
		}
	}
}

func TestExplainIf(t *testing.T) {
	s := newTestServer(t, Config{})
	inst := [][][][]float64{image(1), image(2), image(3), image(4)}
	code, body := call(t, s, "POST", "/v1/models/cnn:explain", map[string]any{"instances": inst, "method": "Saliency"})
	if code != 200 {
		t.Fatalf("%d %v", code, body)
	}
	var probs []float64
	for _, ex := range body["explanations"].([]any) {
		probs = append(probs, ex.(map[string]any)["probability"].(float64))
	}
	mid := (probs[0] + probs[1]) / 2 // explain the examples at or above it
	code, body = call(t, s, "POST", "/v1/models/cnn:explain", map[string]any{"instances": inst, "method": "Saliency",
		"explain_if": map[string]any{"min_probability": mid}})
	if code != 200 {
		t.Fatalf("%d %v", code, body)
	}
	for e, ex := range body["explanations"].([]any) {
		x := ex.(map[string]any)
		explained := x["attributions"] != nil
		if explained != (probs[e] >= mid) || explained == (x["skipped"] != nil) {
			t.Errorf("example %d (probability %v, min %v): %v", e, probs[e], mid, x)
		}
	}
}

func TestErrors(t *testing.T) {
	s := newTestServer(t, Config{MaxBodyBytes: 1 << 20, MaxExamples: 4})
	inst := map[string]any{"instances": [][][][]float64{image(1)}}
	bad := [][][]float64{image(1)[0], image(1)[1]} // two channels
	for _, c := range []struct {
		name, path string
		body       any
		code       int
		says       string
	}{
		{"unknown model", "/v1/models/nope:predict", inst, 404, "no model"},
		{"unknown model metadata", "/v1/models/nope", nil, 404, "no model"},
		{"unknown verb", "/v1/models/cnn:train", inst, 404, "no route"},
		{"bad JSON", "/v1/models/cnn:predict", `{"instances": [1,`, 400, "bad JSON"},
		{"unknown field", "/v1/models/cnn:predict", `{"instance": []}`, 400, "unknown field"},
		{"no instances", "/v1/models/cnn:predict", `{}`, 400, "instances"},
		{"wrong shape", "/v1/models/cnn:predict", map[string]any{"instances": [][][][]float64{bad}}, 400, `input "input": shape [1 2 32 32] (batch first); the model takes [N 3 32 32]`},
		{"ragged", "/v1/models/toy:predict", `{"instances": [[1,2,3],[1,2]]}`, 400, "different lengths"},
		{"strings", "/v1/models/toy:predict", `{"instances": [["a","b","c"]]}`, 400, "not an array of numbers"},
		{"multi-input instances", "/v1/models/mm:predict", `{"instances": [[1]]}`, 400, `"inputs"`},
		{"missing input", "/v1/models/mm:predict", `{"inputs": {"image": [[[[1,2,3,4,5,6,7,8],[1,2,3,4,5,6,7,8],[1,2,3,4,5,6,7,8],[1,2,3,4,5,6,7,8],[1,2,3,4,5,6,7,8],[1,2,3,4,5,6,7,8],[1,2,3,4,5,6,7,8],[1,2,3,4,5,6,7,8]]]]}}`, 400, `input "tabular" is missing`},
		{"too many examples", "/v1/models/toy:predict", `{"instances": [[1,2,3],[1,2,3],[1,2,3],[1,2,3],[1,2,3]]}`, 413, "more than 12 values"},
		{"body too large", "/v1/models/toy:predict", `{"instances": [` + strings.Repeat("[1,2,3],", 200000) + `[1,2,3]]}`, 413, "over 1048576 bytes"},
		{"unknown method", "/v1/models/toy:explain", `{"instances": [[1,2,3]], "method": "Magic"}`, 400, `unknown method "Magic"`},
		{"param out of range", "/v1/models/toy:explain", `{"instances": [[1,2,3]], "method": "IntegratedGradients", "params": {"n_steps": 100000}}`, 400, "n_steps=100000: want 1 to 1000"},
		{"unknown param", "/v1/models/toy:explain", `{"instances": [[1,2,3]], "method": "Saliency", "params": {"n_steps": 3}}`, 400, `no parameter "n_steps"`},
		{"file param", "/v1/models/toy:explain", `{"instances": [[1,2,3]], "method": "FeatureAblation", "params": {"feature_mask": "/etc/passwd"}}`, 400, "names files"},
		{"bad target", "/v1/models/cnn:explain", map[string]any{"instances": [][][][]float64{image(1)}, "target": 10}, 400, "target 10: the model has 10 outputs"},
		{"negative target", "/v1/models/cnn:explain", map[string]any{"instances": [][][][]float64{image(1)}, "target": -1}, 400, "target -1"},
		{"targets per example", "/v1/models/cnn:explain", map[string]any{"instances": [][][][]float64{image(1)}, "target": []int{1, 2}}, 400, "2 indices for 1 examples"},
		{"bad deadline", "/v1/models/toy:predict", `{"instances": [[1,2,3]], "deadline_ms": -5}`, 400, "deadline_ms=-5"},
		{"explain fields on predict", "/v1/models/toy:predict", `{"instances": [[1,2,3]], "method": "Saliency"}`, 400, "belong to :explain"},
		{"layer of a method without", "/v1/models/toy:explain", `{"instances": [[1,2,3]], "method": "Saliency", "params": {"layer": "fc"}}`, 400, "Saliency takes no layer"},
		{"unknown layer", "/v1/models/cnn:explain", map[string]any{"instances": [][][][]float64{image(1)}, "method": "LayerGradCam", "params": map[string]any{"layer": "nope"}}, 400, "nope"},
		{"bad baselines", "/v1/models/toy:explain", `{"instances": [[1,2,3]], "params": {"baselines": [1,2]}}`, 400, "baselines"},
		{"v2 wrong datatype", "/v2/models/toy/infer", `{"inputs": [{"name": "input", "shape": [1,3], "datatype": "INT64", "data": [1,2,3]}]}`, 400, `datatype "INT64"`},
		{"v2 wrong shape", "/v2/models/toy/infer", `{"inputs": [{"name": "input", "shape": [1,4], "datatype": "FP32", "data": [1,2,3,4]}]}`, 400, "shape [1 4]; the model takes [N 3]"},
		{"v2 data short", "/v2/models/toy/infer", `{"inputs": [{"name": "input", "shape": [2,3], "datatype": "FP32", "data": [1,2,3]}]}`, 400, "3 numbers for shape [2 3]"},
		{"v2 unknown model", "/v2/models/nope/infer", `{"inputs": []}`, 404, "no model"},
		{"v2 explain", "/v2/models/toy/explain", `{"inputs": []}`, 404, "POST /v1/models/toy:explain"},
	} {
		code, body := call(t, s, "POST", c.path, c.body)
		if c.body == nil {
			code, body = call(t, s, "GET", c.path, nil)
		}
		msg, _ := body["error"].(string)
		if code != c.code || !strings.Contains(msg, c.says) {
			t.Errorf("%s: %d %q, want %d saying %q", c.name, code, msg, c.code, c.says)
		}
	}
}

func TestAuthAndOrigin(t *testing.T) {
	s := newTestServer(t, Config{Token: "secret"})
	inst := `{"instances": [[1,2,3]]}`
	for _, c := range []struct {
		name   string
		header []string
		code   int
	}{
		{"no token", nil, 401},
		{"wrong token", []string{"Authorization", "Bearer nope"}, 401},
		{"token", []string{"Authorization", "Bearer secret"}, 200},
		{"cross-site", []string{"Authorization", "Bearer secret", "Sec-Fetch-Site", "cross-site"}, 403},
		{"other origin", []string{"Authorization", "Bearer secret", "Origin", "http://evil.example"}, 403},
		{"same origin", []string{"Authorization", "Bearer secret", "Origin", "http://example.com"}, 200},
		{"form post", []string{"Authorization", "Bearer secret", "Content-Type", "text/plain"}, 403},
	} {
		code, body := call(t, s, "POST", "/v1/models/toy:predict", inst, c.header...)
		if code != c.code {
			t.Errorf("%s: %d %v, want %d", c.name, code, body, c.code)
		}
	}
	if code, _ := call(t, s, "GET", "/metrics", nil); code != 401 {
		t.Errorf("metrics without the token: %d", code)
	}
}

// blocking makes the server's method wait for release (or its context),
// counting the calls that started.
func blocking(s *Server) (started chan struct{}, release chan struct{}) {
	started, release = make(chan struct{}, 100), make(chan struct{})
	s.attribute = func(ctx context.Context, j *job) (*attr.Result, error) {
		started <- struct{}{}
		select {
		case <-release:
			return s.runMethod(ctx, j)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return started, release
}

func TestQueueFull(t *testing.T) {
	s := newTestServer(t, Config{MaxRunning: 1, MaxQueue: 1})
	started, release := blocking(s)
	body := `{"instances": [[1,2,3]], "method": "Saliency"}`
	codes := make(chan int, 2)
	go func() { c, _ := call(t, s, "POST", "/v1/models/toy:explain", body); codes <- c }()
	<-started // the first runs
	go func() { c, _ := call(t, s, "POST", "/v1/models/toy:explain", body); codes <- c }()
	for s.waiting.Load() != 1 { // the second waits
		time.Sleep(time.Millisecond)
	}
	if code, b := call(t, s, "POST", "/v1/models/toy:explain", body); code != 429 {
		t.Errorf("third request: %d %v, want 429", code, b)
	}
	close(release)
	for i := 0; i < 2; i++ {
		if c := <-codes; c != 200 {
			t.Errorf("request %d: %d", i, c)
		}
	}
}

func TestDeadline(t *testing.T) {
	s := newTestServer(t, Config{MaxRunning: 1})
	started, _ := blocking(s)
	t0 := time.Now()
	code, body := call(t, s, "POST", "/v1/models/toy:explain", `{"instances": [[1,2,3]], "method": "Saliency", "deadline_ms": 50}`)
	<-started
	if code != 504 || time.Since(t0) > time.Minute { // the blocked method never returns by itself
		t.Fatalf("%d %v after %v, want 504", code, body, time.Since(t0))
	}
	// The slot is back: a real explanation runs.
	s.attribute = s.runMethod
	waitFree(t, s)
	if code, body := call(t, s, "POST", "/v1/models/toy:explain", `{"instances": [[1,2,3]], "method": "Saliency"}`); code != 200 {
		t.Fatalf("after the deadline: %d %v", code, body)
	}
	// A real method past its deadline.
	code, body = call(t, s, "POST", "/v1/models/cnn:explain", map[string]any{"instances": [][][][]float64{image(1), image(2), image(3), image(4)},
		"method": "IntegratedGradients", "params": map[string]any{"n_steps": 1000}, "deadline_ms": 20})
	if code != 504 {
		t.Fatalf("IntegratedGradients past its deadline: %d %v", code, body)
	}
	waitFree(t, s)
}

// waitFree waits until no request holds a slot.
func waitFree(t testing.TB, s *Server) {
	t.Helper()
	for i := 0; len(s.slots) > 0; i++ {
		if i > 5000 {
			t.Fatalf("%d slots still held", len(s.slots))
		}
		time.Sleep(time.Millisecond)
	}
}

func TestClientLeaves(t *testing.T) {
	s := newTestServer(t, Config{MaxRunning: 1})
	started, _ := blocking(s)
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequestWithContext(ctx, "POST", "/v1/models/toy:explain", strings.NewReader(`{"instances": [[1,2,3]], "method": "Saliency"}`))
	w := httptest.NewRecorder()
	done := make(chan struct{})
	go func() { s.ServeHTTP(w, req); close(done) }()
	<-started
	cancel()
	<-done
	if w.Code != 504 {
		t.Errorf("client left: %d %s", w.Code, w.Body)
	}
	waitFree(t, s)
}

func TestPanicFreesSlot(t *testing.T) {
	s := newTestServer(t, Config{MaxRunning: 1, MaxQueue: 1})
	s.attribute = func(ctx context.Context, j *job) (*attr.Result, error) { panic("boom") }
	for i := 0; i < 3; i++ {
		code, body := call(t, s, "POST", "/v1/models/toy:explain", `{"instances": [[1,2,3]], "method": "Saliency"}`)
		if code != 500 || !strings.Contains(body["error"].(string), "boom") {
			t.Fatalf("panic %d: %d %v", i, code, body)
		}
	}
	waitFree(t, s)
	s.attribute = s.runMethod
	if code, body := call(t, s, "POST", "/v1/models/toy:explain", `{"instances": [[1,2,3]], "method": "Saliency"}`); code != 200 {
		t.Fatalf("after panics: %d %v", code, body)
	}
	req := httptest.NewRequest("GET", "/metrics", nil)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	if want := `loupe_request_failures_total{method="Saliency",model="toy",reason="panic",route="explain"} 3`; !strings.Contains(w.Body.String(), want) {
		t.Errorf("metrics lack %q", want)
	}
}

func TestFitDeadline(t *testing.T) {
	// The estimate: a forward pass of 1 ms, a step as three, 60% of what is left.
	j := &job{vals: map[string]string{"n_steps": "1000", "method": "gausslegendre"}}
	j.fitDeadline(time.Millisecond, time.Now().Add(time.Second))
	if f := j.fitted["n_steps"]; f.Asked != 1000 || f.Used < 150 || f.Used > 200 || j.vals["n_steps"] != fmt.Sprint(f.Used) {
		t.Errorf("fitted %+v, n_steps %s", j.fitted, j.vals["n_steps"])
	}
	j = &job{vals: map[string]string{"n_steps": "10"}}
	if j.fitDeadline(time.Millisecond, time.Now().Add(time.Second)); j.fitted != nil || j.vals["n_steps"] != "10" {
		t.Errorf("a count that fits was lowered: %v", j.fitted)
	}

	// Through HTTP: the count used is in the answer and its params. The
	// estimate may miss under load: a 504 is then what fit_deadline could
	// not prevent.
	s := newTestServer(t, Config{})
	code, body := call(t, s, "POST", "/v1/models/cnn:explain", map[string]any{"instances": [][][][]float64{image(1)},
		"method": "IntegratedGradients", "params": map[string]any{"n_steps": 1000}, "deadline_ms": 30, "fit_deadline": true})
	if code == 504 {
		t.Logf("fitted but still late: %v", body)
		return
	}
	if code != 200 {
		t.Fatalf("%d %v", code, body)
	}
	f := body["fitted"].(map[string]any)["n_steps"].(map[string]any)
	used := f["used"].(float64)
	if f["asked"] != 1000.0 || used >= 1000 || used < 1 || body["params"].(map[string]any)["n_steps"] != used {
		t.Errorf("fitted %v, params %v", f, body["params"])
	}
}

// TestLoad sends identical requests at once through a real listener:
// identical answers, and no goroutine left behind.
func TestLoad(t *testing.T) {
	s := newTestServer(t, Config{MaxRunning: 2, MaxQueue: 64})
	base := runtime.NumGoroutine()
	srv := httptest.NewServer(s)
	client := srv.Client()
	body, _ := json.Marshal(map[string]any{"instances": [][][][]float64{image(5)}, "method": "IntegratedGradients", "params": map[string]any{"n_steps": 8}})
	const n = 24
	answers := make([]string, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Post(srv.URL+"/v1/models/cnn:explain", "application/json", bytes.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var v map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != 200 {
				t.Errorf("status %d: %v %v", resp.StatusCode, err, v)
				return
			}
			delete(v, "elapsed_ms")
			b, _ := json.Marshal(v)
			answers[i] = string(b)
		}()
	}
	wg.Wait()
	for i := 1; i < n; i++ {
		if answers[i] != answers[0] {
			t.Fatalf("answer %d differs", i)
		}
	}
	client.CloseIdleConnections()
	srv.Close()
	waitFree(t, s)
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > base {
		t.Errorf("%d goroutines after the load, %d before", g, base)
	}
}

// TestMethods runs methods of every kind through :explain.
func TestMethods(t *testing.T) {
	if testing.Short() {
		t.Skip("several methods")
	}
	s := newTestServer(t, Config{})
	inst := [][][][]float64{image(1), image(2)}
	for _, c := range []struct {
		method string
		params map[string]any
	}{
		{"Saliency", map[string]any{"abs": false}},
		{"GradientShap", map[string]any{"n_samples": 3, "seed": 1}},
		{"DeepLiftShap", nil},
		{"FeatureAblation", map[string]any{"feature_grid": 8}},
		{"Occlusion", map[string]any{"sliding_window_shapes": []int{3, 8, 8}, "strides": []int{3, 8, 8}}},
		{"KernelShap", map[string]any{"n_samples": 10, "feature_grid": 16}},
		{"NoiseTunnel", map[string]any{"nt_samples": 2, "stdevs": 0.1}},
		{"NoiseTunnel", map[string]any{"nt_samples": 2, "inner": "IntegratedGradients", "stdevs": 0.1}},
		{"LRP", nil},
		{"LayerGradCam", nil},
		{"GradCAM", nil},
		{"GuidedBackprop", nil},
	} {
		code, body := call(t, s, "POST", "/v1/models/cnn:explain", map[string]any{"instances": inst, "method": c.method, "params": c.params})
		if code != 200 {
			t.Errorf("%s: %d %v", c.method, code, body["error"])
			continue
		}
		if n := len(body["explanations"].([]any)); n != 2 {
			t.Errorf("%s: %d explanations", c.method, n)
		}
		if a := floats(body["explanations"].([]any)[1].(map[string]any)["attributions"]); len(a) == 0 {
			t.Errorf("%s: no attributions", c.method)
		}
	}
}

// TestTokenModel serves a model of int64 token ids: prediction works on
// both protocols; explaining it is refused (nothing to attribute).
func TestTokenModel(t *testing.T) {
	m, err := LoadModel("text", testmodels.Path("text_s0.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	in := m.Model.Inputs()[0]
	if in.DType != tensor.Int64 {
		t.Skipf("text_s0's input is %v", in.DType)
	}
	s, err := New(Config{}, m)
	if err != nil {
		t.Fatal(err)
	}
	shape := exampleShape(in)
	n := 1
	for i, d := range shape {
		if d < 0 {
			shape[i] = 6
		}
		n *= shape[i]
	}
	data := make([]int, n)
	for i := range data {
		data[i] = i % 5
	}
	code, body := call(t, s, "POST", "/v2/models/text/infer", map[string]any{"inputs": []map[string]any{
		{"name": in.Name, "shape": append([]int{1}, shape...), "datatype": "INT64", "data": data}}})
	if code != 200 {
		t.Fatalf("infer: %d %v", code, body)
	}
	if code, body := call(t, s, "POST", "/v1/models/text:explain", map[string]any{"inputs": map[string]any{in.Name: []any{data}}}); code != 400 {
		t.Errorf("explain: %d %v, want 400", code, body)
	}
	frac := make([]float64, n)
	frac[0] = 1.5
	code, body = call(t, s, "POST", "/v2/models/text/infer", map[string]any{"inputs": []map[string]any{
		{"name": in.Name, "shape": append([]int{1}, shape...), "datatype": "INT64", "data": frac}}})
	if msg, _ := body["error"].(string); code != 400 || !strings.Contains(msg, "not an integer") {
		t.Fatalf("a fraction as a token id: %d %v", code, body)
	}
}
