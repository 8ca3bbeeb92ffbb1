package insights

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"image/png"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/internal/demo"
	"github.com/loupe-ml/loupe/internal/explain"
	"github.com/loupe-ml/loupe/internal/testmodels"
	"github.com/loupe-ml/loupe/tensor"
)

// demoExamples are six demo images, the last one labelled wrongly.
func demoExamples() []Example {
	var exs []Example
	for i := 0; i < 6; i++ {
		img, _ := demo.Draw(i%3, uint64(500+i))
		x, _ := img.Reshape(1, 3, demo.Size, demo.Size)
		label := i % 3
		if i == 5 {
			label = 0 // a triangle labelled square
		}
		exs = append(exs, Example{ID: demo.Classes[i%3], Inputs: []*tensor.Tensor{x}, Label: label})
	}
	return exs
}

func demoNet(t *testing.T) *attr.Net {
	t.Helper()
	m, err := demo.Model()
	if err != nil {
		t.Fatal(err)
	}
	nt, err := attr.NewNet(m)
	if err != nil {
		t.Fatal(err)
	}
	return nt
}

// testServer serves six demo images, the last one labelled wrongly.
func testServer(t *testing.T) *Server {
	t.Helper()
	calls := 0
	s, err := New(context.Background(), demoNet(t), demo.Classes, demoExamples(), func(done, total int) { calls++ })
	if err != nil {
		t.Fatal(err)
	}
	if calls != 6 {
		t.Errorf("progress called %d times for 6 examples", calls)
	}
	return s
}

// discNet is the demo model with its last layer's bias set so that it
// says disc whatever the image.
func discNet(t *testing.T) *attr.Net {
	nt := demoNet(t)
	var last string
	for _, n := range nt.Model.Graph().Nodes {
		if n.OpType == "Gemm" && len(n.Inputs) == 3 {
			last = n.Inputs[2]
		}
	}
	if last == "" {
		t.Fatal("the demo model has no Gemm with a bias")
	}
	b, _ := tensor.FromFloat32([]float32{-100, 100, -100}, 3)
	nt.Inject = map[string]*tensor.Tensor{last: b}
	return nt
}

func TestPredictionsAndFilters(t *testing.T) {
	s := testServer(t)
	all, _ := s.Examples(AnyFilter)
	if len(all) != 6 {
		t.Fatalf("%d examples, want 6", len(all))
	}
	wrong, _ := s.Examples(Filter{Class: -1, Model: -1, Correct: "wrong"})
	if len(wrong) != 1 || wrong[0].Index != 5 || wrong[0].Predictions[0].Name != "triangle" || wrong[0].LabelName != "square" {
		t.Errorf("wrong predictions: %+v", wrong)
	}
	squares, _ := s.Examples(Filter{Class: 0, Model: -1, Correct: "right"})
	if len(squares) != 2 {
		t.Errorf("right squares: %+v", squares)
	}
	sum := s.Summary()
	if sum.Examples != 6 || sum.Labelled != 6 || len(sum.Models) != 1 || sum.Models[0].Right != 5 || len(sum.Classes) != 3 ||
		sum.Classes[0].Name != "square" || sum.Classes[0].Examples != 3 || sum.Classes[0].Right[0] != 2 || sum.Classes[2].Predicted[0] != 2 {
		t.Errorf("summary %+v", sum)
	}
	if _, err := s.Examples(Filter{Class: -1, Model: -1, Correct: "maybe"}); err == nil {
		t.Error("filter maybe: no error")
	}
	if _, err := s.Examples(Filter{Class: -1, Model: 1}); err == nil {
		t.Error("model 1 of 1: no error")
	}
}

// Two models side by side: each example has both predictions; the model
// filter and right/wrong follow the model chosen; classes listed are
// only those that occur.
func TestSeveralModels(t *testing.T) {
	s, err := NewModels(context.Background(), []Model{{Name: "demo", Net: demoNet(t)}, {Name: "disc", Net: discNet(t)}}, demoExamples(),
		Options{Classes: append(append([]string(nil), demo.Classes...), "unused", "never")})
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := s.Examples(AnyFilter)
	for _, r := range rows {
		if len(r.Predictions) != 2 || r.Predictions[0].Model != "demo" || r.Predictions[1].Name != "disc" {
			t.Fatalf("row %+v", r)
		}
	}
	for f, want := range map[Filter]int{
		{Class: -1, Model: 1, Correct: "right"}:  2, // the discs
		{Class: -1, Model: 0, Correct: "right"}:  5,
		{Class: -1, Model: -1, Correct: "right"}: 2, // right by both
		{Class: -1, Model: -1, Correct: "wrong"}: 4, // wrong by one
		{Class: 1, Model: -1}:                    2,
	} {
		if got, _ := s.Examples(f); len(got) != want {
			t.Errorf("%+v: %d examples, want %d", f, len(got), want)
		}
	}
	sum := s.Summary()
	if len(sum.Classes) != 3 || sum.Models[1].Right != 2 || sum.Classes[1].Predicted[1] != 6 {
		t.Errorf("summary %+v", sum)
	}
	h := handler(t, s)
	code, _, body := get(t, h, "/api/summary")
	if code != 200 || strings.Contains(string(body), "unused") || !strings.Contains(string(body), `"method":"Saliency"`) {
		t.Errorf("summary: %d %s", code, body)
	}
	// Each model's attributions: different models, different maps.
	var e [2]Explanation
	for mi := range e {
		code, ctype, body := get(t, h, "/api/explain?i=0&method=Saliency&model="+string(rune('0'+mi)))
		if err := json.Unmarshal(body, &e[mi]); code != 200 || ctype != "application/json" || err != nil {
			t.Fatalf("model %d: %d %v %.200s", mi, code, err, body)
		}
	}
	if e[0].Model != "demo" || e[1].Model != "disc" || e[1].Target != "disc" || e[0].Target != "square" || e[0].Parts[0].Image == e[1].Parts[0].Image {
		t.Errorf("explanations %+v %+v", e[0].Target, e[1].Target)
	}
	if code, _, body := get(t, h, "/api/explain?i=0&method=Saliency&model=2"); code != 400 || !strings.Contains(string(body), "no model 2") {
		t.Errorf("model 2 of 2: %d %s", code, body)
	}
	if _, err := NewModels(context.Background(), []Model{{Name: "a", Net: demoNet(t)}, {Name: "a", Net: demoNet(t)}}, demoExamples(), Options{}); err == nil {
		t.Error("two models named a: no error")
	}
}

// load loads one of the oracle's models.
func load(t *testing.T, name string) *attr.Net {
	t.Helper()
	m, err := engine.Load(testmodels.Path(name))
	if err != nil {
		t.Fatal(err)
	}
	nt, err := attr.NewNet(m)
	if err != nil {
		t.Fatal(err)
	}
	return nt
}

// An image and a tabular input: each drawn in its modality, the features
// named, each part's net contribution the sum of its attributions, as
// explain.Run computes them.
func TestImageAndFeatures(t *testing.T) {
	nt := load(t, "multimodal_s0.onnx")
	var exs []Example
	for i := 0; i < 3; i++ {
		img, tab := tensor.New(1, 1, 8, 8), tensor.New(1, 5)
		for j := range img.F {
			img.F[j] = float32((j*7+i*3)%11) / 10
		}
		for j := range tab.F {
			tab.F[j] = float32(j-i) / 3
		}
		exs = append(exs, Example{ID: string(rune('a' + i)), Inputs: []*tensor.Tensor{img, tab}, Label: -1})
	}
	names := []string{"age", "height", "weight", "income", "<b>score</b>"}
	s, err := NewModels(context.Background(), []Model{{Net: nt}}, exs, Options{Inputs: []Input{{}, {Name: "tabular data", Features: names}}})
	if err != nil {
		t.Fatal(err)
	}
	if in := s.Inputs(); in[0].Modality != Image || in[1].Modality != Features || in[1].Name != "tabular data" || s.Models()[0] != "model 1" {
		t.Fatalf("inputs %+v, models %v", in, s.Models())
	}
	e, err := s.Explain(context.Background(), 1, Request{Method: "IntegratedGradients", Params: []string{"n_steps=8"}})
	if err != nil {
		t.Fatal(err)
	}
	want, err := explain.Run(context.Background(), nt, exs[1].Inputs, explain.Request{Method: "IntegratedGradients", Params: []string{"n_steps=8"}, Target: explain.Class(s.rows[1].Predictions[0].Predicted)})
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Parts) != 2 || e.Parts[0].Modality != Image || e.Parts[1].Modality != Features || e.Parts[1].Name != "tabular data" {
		t.Fatalf("parts %+v", e.Parts)
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(e.Parts[0].Image, "data:image/png;base64,"))
	if _, err2 := png.Decode(bytes.NewReader(b)); err != nil || err2 != nil {
		t.Errorf("image part: %v %v", err, err2)
	}
	for k, p := range e.Parts {
		var sum float64
		for _, v := range want.Attributions[k].F {
			sum += float64(v)
		}
		if math.Abs(p.Total-sum) > 1e-5 {
			t.Errorf("%s: net contribution %g, want %g", p.Name, p.Total, sum)
		}
	}
	for j, f := range e.Parts[1].Features {
		if f.Name != names[j] || f.Value != float64(exs[1].Inputs[1].F[j]) || math.Abs(f.Score-float64(want.Attributions[1].F[j])) > 1e-6 {
			t.Errorf("feature %d: %+v, want %s = %g scored %g", j, f, names[j], exs[1].Inputs[1].F[j], want.Attributions[1].F[j])
		}
	}
	// The tabular input has no picture; a layer's map over the image is
	// drawn over it.
	if _, err := s.Picture(0, 1); err == nil {
		t.Error("a picture of the tabular input")
	}
	if _, err := s.Attribution(context.Background(), 0, Request{Method: "Saliency", Input: 1}); err == nil || !strings.Contains(err.Error(), "not an image") {
		t.Errorf("a PNG of the tabular input: %v", err)
	}
	e, err = s.Explain(context.Background(), 0, Request{Method: "LayerGradCam", Layer: "conv"})
	if err != nil || len(e.Parts) != 1 || e.Parts[0].Modality != Image || e.Parts[0].Name != "layer conv" {
		t.Errorf("LayerGradCam: %+v %v", e, err)
	}
}

// Text: the tokens given, or the vocabulary's, highlighted by their
// attributions; an embedding layer's attributions summed per token (not
// drawn as a matrix). The page starts with a method that works on token
// numbers.
func TestText(t *testing.T) {
	nt := load(t, "text_s0.onnx")
	var exs []Example
	for i := 0; i < 2; i++ {
		x := tensor.NewInt(1, 7)
		for j := range x.I {
			x.I[j] = int64(3*j+i+1) % 20
		}
		exs = append(exs, Example{ID: "t", Inputs: []*tensor.Tensor{x}, Label: i})
	}
	exs[0].Tokens = [][]string{strings.Fields("the film was a real treat .")}
	vocab := make([]string, 20)
	for j := range vocab {
		vocab[j] = "w" + string(rune('a'+j))
	}
	s, err := NewModels(context.Background(), []Model{{Name: "text", Net: nt}}, exs, Options{Inputs: []Input{{Vocabulary: vocab}}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Inputs()[0].Modality != Text || s.method != "FeatureAblation" {
		t.Fatalf("inputs %+v, method %s", s.Inputs(), s.method)
	}
	e, err := s.Explain(context.Background(), 0, Request{Method: s.method})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := explain.Run(context.Background(), nt, exs[0].Inputs, explain.Request{Method: "FeatureAblation", Target: explain.Class(s.rows[0].Predictions[0].Predicted)})
	if len(e.Parts) != 1 || e.Parts[0].Modality != Text || len(e.Parts[0].Tokens) != 7 {
		t.Fatalf("parts %+v", e.Parts)
	}
	for j, tok := range e.Parts[0].Tokens {
		if tok.Name != exs[0].Tokens[0][j] || math.Abs(tok.Score-float64(want.Attributions[0].F[j])) > 1e-6 {
			t.Errorf("token %d: %+v", j, tok)
		}
	}
	// A layer method on the embedding: [1, 7, 8] summed to 7 tokens, named
	// by the vocabulary.
	r := Request{Method: "LayerIntegratedGradients", Layer: "emb", Params: []string{"n_steps=10"}}
	e, err = s.Explain(context.Background(), 1, r)
	if err != nil {
		t.Fatal(err)
	}
	want, _ = explain.Run(context.Background(), nt, exs[1].Inputs, explain.Request{Method: r.Method, Layer: "emb", Params: r.Params, Target: explain.Class(s.rows[1].Predictions[0].Predicted)})
	sums, _ := attr.SumTokens(want.Attributions[0])
	if len(e.Parts) != 1 || e.Parts[0].Modality != Text || len(e.Parts[0].Tokens) != 7 {
		t.Fatalf("embedding layer: parts %+v", e.Parts)
	}
	for j, tok := range e.Parts[0].Tokens {
		if tok.Name != vocab[exs[1].Inputs[0].I[j]] || math.Abs(tok.Score-float64(sums.F[j])) > 1e-5 {
			t.Errorf("token %d: %+v, want %s %g", j, tok, vocab[exs[1].Inputs[0].I[j]], sums.F[j])
		}
	}
	if _, err := s.Explain(context.Background(), 0, Request{Method: "Saliency"}); err == nil {
		t.Error("Saliency on token numbers: no error")
	}
}

// testToken is the tests' token; testAddr the address their requests
// come in on.
const (
	testToken = "test-token-0123456789"
	testAddr  = "127.0.0.1:8080"
)

// handler returns the server's handler with the test token.
func handler(t *testing.T, s *Server) http.Handler {
	t.Helper()
	h, err := s.Handler(Config{Token: testToken, Addr: testAddr})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// get makes a request as the page does: to the server's address, with
// the token.
func get(t *testing.T, h http.Handler, url string) (int, string, []byte) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", url, nil)
	req.Host = testAddr
	req.Header.Set("Authorization", "Bearer "+testToken)
	h.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, rec.Header().Get("Content-Type"), b
}

func TestHandler(t *testing.T) {
	s := testServer(t)
	h := handler(t, s)
	code, _, body := get(t, h, "/")
	if code != 200 || !bytes.Contains(body, []byte("loupe Insights")) {
		t.Errorf("page: %d\n%.300s", code, body)
	}
	code, _, body = get(t, h, "/api/examples?correct=wrong")
	var page examplesPage
	if err := json.Unmarshal(body, &page); code != 200 || err != nil || page.Total != 1 || len(page.Examples) != 1 || page.Examples[0].Index != 5 {
		t.Errorf("examples: %d %v %s", code, err, body)
	}
	code, _, body = get(t, h, "/api/examples?offset=4&limit=3")
	page = examplesPage{}
	if err := json.Unmarshal(body, &page); code != 200 || err != nil || page.Total != 6 || page.Offset != 4 || len(page.Examples) != 2 || page.Examples[0].Index != 4 {
		t.Errorf("examples from 4: %d %v %s", code, err, body)
	}
	code, _, body = get(t, h, "/api/methods")
	if code != 200 || !strings.Contains(string(body), `"name":"n_steps","default":"50"`) {
		t.Errorf("methods: %d %.300s", code, body)
	}
	code, ctype, body := get(t, h, "/api/picture?i=1")
	if _, err := png.Decode(bytes.NewReader(body)); code != 200 || ctype != "image/png" || err != nil {
		t.Errorf("picture: %d %s %v", code, ctype, err)
	}
	for _, url := range []string{
		"/api/attribution?i=0&method=IntegratedGradients&param=n_steps=8&sign=positive",
		"/api/attribution?i=2&method=LayerGradCam&param=relu_attributions=true&sign=positive&target=1",
		"/api/attribution?i=3&method=Saliency&view=heat_map",
	} {
		code, ctype, body = get(t, h, url)
		img, err := png.Decode(bytes.NewReader(body))
		if code != 200 || ctype != "image/png" || err != nil {
			t.Errorf("%s: %d %s %v %.200s", url, code, ctype, err, body)
			continue
		}
		if b := img.Bounds(); b.Dx() != 360 || b.Dy() != 330 {
			t.Errorf("%s: figure of %v", url, b)
		}
	}
	if s.answers.len() != 3 || s.results.len() != 3 {
		t.Errorf("%d figures and %d attributions cached, want 3", s.answers.len(), s.results.len())
	}
	get(t, h, "/api/attribution?i=3&view=heat_map&method=Saliency")
	if s.answers.len() != 3 {
		t.Errorf("the same request drawn again: %d figures cached", s.answers.len())
	}
	// Another view of the same attributions: drawn, not computed again.
	get(t, h, "/api/attribution?i=3&view=masked_image&sign=positive&method=Saliency")
	get(t, h, "/api/explain?i=3&method=Saliency")
	if s.answers.len() != 5 || s.results.len() != 3 {
		t.Errorf("other views: %d answers, %d attributions cached, want 5 and 3", s.answers.len(), s.results.len())
	}
	for url, want := range map[string]string{
		"/api/attribution?i=0&method=Magic":                    "unknown method",
		"/api/attribution?i=99&method=Saliency":                "no example 99",
		"/api/attribution?i=0&method=Saliency&param=n_steps=3": "has no parameter",
		"/api/attribution?i=0&method=Saliency&sign=sideways":   "unknown sign",
		"/api/attribution?i=0&method=Saliency&target=7":        "out of range",
		"/api/attribution?i=0&method=Saliency&view=x":          "unknown view",
		"/api/attribution?i=0&method=Saliency&input=1":         "no input 1",
		"/api/explain?method=Saliency":                         "want an example number",
		"/api/explain?i=0&model=x&method=Saliency":             "want a number",
		"/api/examples?class=square":                           "want a number",
		"/api/examples?limit=1000":                             "limit 1000",
		"/api/examples?offset=-1":                              "offset -1",
		"/api/examples?model=3":                                "no model 3",
		"/api/picture?i=-1":                                    "no example -1",
	} {
		code, _, body := get(t, h, url)
		if code < 400 || !strings.Contains(string(body), want) {
			t.Errorf("%s: %d %q, want an error mentioning %q", url, code, body, want)
		}
	}
}

func TestNewErrors(t *testing.T) {
	nt := demoNet(t)
	x := tensor.New(1, 3, demo.Size, demo.Size)
	if _, err := New(context.Background(), nt, nil, nil, nil); err == nil {
		t.Error("no examples: no error")
	}
	if _, err := NewModels(context.Background(), nil, []Example{{ID: "x", Inputs: []*tensor.Tensor{x}}}, Options{}); err == nil {
		t.Error("no models: no error")
	}
	if _, err := New(context.Background(), nt, nil, []Example{{ID: "two", Inputs: []*tensor.Tensor{x, x}}}, nil); err == nil || !strings.Contains(err.Error(), "2 inputs") {
		t.Errorf("two inputs for one: %v", err)
	}
	if _, err := New(context.Background(), nt, nil, []Example{{ID: "nobatch", Inputs: []*tensor.Tensor{tensor.New(3, demo.Size, demo.Size)}}}, nil); err == nil || !strings.Contains(err.Error(), "batch of one") {
		t.Errorf("no batch dimension: %v", err)
	}
	if _, err := New(context.Background(), nt, nil, []Example{{ID: "small", Inputs: []*tensor.Tensor{tensor.New(1, 3, 5, 5)}}}, nil); err == nil || !strings.Contains(err.Error(), "small") {
		t.Errorf("wrong size: %v", err)
	}
	good := Example{ID: "good", Inputs: []*tensor.Tensor{x}}
	bad := Example{ID: "small", Inputs: []*tensor.Tensor{tensor.New(1, 3, 5, 5)}}
	if _, err := New(context.Background(), nt, nil, []Example{good, good, bad, bad}, nil); err == nil || !strings.Contains(err.Error(), "example 2 (small)") {
		t.Errorf("wrong size after two good examples: %v", err)
	}
	if _, err := NewModels(context.Background(), []Model{{Net: nt}}, []Example{good}, Options{Inputs: []Input{{Modality: "sound"}}}); err == nil || !strings.Contains(err.Error(), "sound") {
		t.Errorf("modality sound: %v", err)
	}
	if _, err := NewModels(context.Background(), []Model{{Net: nt}}, []Example{good}, Options{Inputs: []Input{{}, {}}}); err == nil {
		t.Error("two inputs described for one: no error")
	}
}

// Concurrent requests, some for the same figure, give the same bytes as
// one request alone (run under -race in CI).
func TestConcurrentRequests(t *testing.T) {
	s := testServer(t)
	h := handler(t, s)
	urls := []string{"/api/attribution?i=0&method=Saliency", "/api/attribution?i=1&method=InputXGradient&sign=all&view=heat_map", "/api/explain?i=1&method=InputXGradient&sign=all&view=heat_map"}
	want := make([][]byte, len(urls))
	for k, u := range urls {
		_, _, want[k] = get(t, h, u)
	}
	s.answers, s.results = newCache(0, maxAnswerBytes), newCache(maxResults, maxResultBytes) // draw them again, concurrently
	var wg sync.WaitGroup
	for r := 0; r < 9; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			k := r % len(urls)
			code, _, got := get(t, h, urls[k])
			if code != 200 || !bytes.Equal(got, want[k]) {
				t.Errorf("request %d: status %d, %d bytes differ from the serial answer", r, code, len(got))
			}
		}(r)
	}
	wg.Wait()
}

// The caches drop their oldest entries past their bounds.
func TestCacheBounds(t *testing.T) {
	c := newCache(2, 0)
	for _, k := range []string{"a", "b", "c"} {
		c.put(k, k, 1)
	}
	if _, ok := c.get("a"); ok || c.len() != 2 {
		t.Errorf("count bound: a kept, %d entries", c.len())
	}
	c = newCache(0, 10)
	c.put("big", 1, 11)
	c.put("a", 1, 6)
	c.put("b", 1, 6)
	if _, ok := c.get("big"); ok || c.len() != 1 || c.bytes != 6 {
		t.Errorf("size bound: %d entries of %d bytes", c.len(), c.bytes)
	}
}
