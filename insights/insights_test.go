package insights

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/internal/demo"
	"github.com/loupe-ml/loupe/tensor"
)

// testServer serves six demo images, the last one labelled wrongly.
func testServer(t *testing.T) *Server {
	t.Helper()
	m, err := demo.Model()
	if err != nil {
		t.Fatal(err)
	}
	nt, err := attr.NewNet(m)
	if err != nil {
		t.Fatal(err)
	}
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
	calls := 0
	s, err := New(context.Background(), nt, demo.Classes, exs, func(done, total int) { calls++ })
	if err != nil {
		t.Fatal(err)
	}
	if calls != 6 {
		t.Errorf("progress called %d times for 6 examples", calls)
	}
	return s
}

func TestPredictionsAndFilters(t *testing.T) {
	s := testServer(t)
	all, _ := s.Predictions(-1, "")
	if len(all) != 6 {
		t.Fatalf("%d predictions, want 6", len(all))
	}
	wrong, _ := s.Predictions(-1, "wrong")
	if len(wrong) != 1 || wrong[0].Index != 5 || wrong[0].Name != "triangle" || wrong[0].LabelName != "square" {
		t.Errorf("wrong predictions: %+v", wrong)
	}
	squares, _ := s.Predictions(0, "right")
	if len(squares) != 2 {
		t.Errorf("right squares: %+v", squares)
	}
	sum := s.Summary()
	if sum.Examples != 6 || sum.Labelled != 6 || sum.Right != 5 || len(sum.Classes) != 3 || sum.Classes[0] != (ClassSummary{"square", 3, 2}) {
		t.Errorf("summary %+v", sum)
	}
	if _, err := s.Predictions(-1, "maybe"); err == nil {
		t.Error("filter maybe: no error")
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
	if code != 200 || !bytes.Contains(body, []byte("loupe Insights")) || !bytes.Contains(body, []byte(">triangle</option>")) || !bytes.Contains(body, []byte("5 of 6 labelled ones right")) {
		t.Errorf("page: %d\n%.300s", code, body)
	}
	code, _, body = get(t, h, "/api/examples?correct=wrong")
	var preds []Prediction
	if err := json.Unmarshal(body, &preds); code != 200 || err != nil || len(preds) != 1 || preds[0].Index != 5 {
		t.Errorf("examples: %d %v %s", code, err, body)
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
	if len(s.cache) != 3 {
		t.Errorf("%d figures cached, want 3", len(s.cache))
	}
	get(t, h, "/api/attribution?i=3&view=heat_map&method=Saliency")
	if len(s.cache) != 3 {
		t.Errorf("the same request drawn again: %d figures cached", len(s.cache))
	}
	for url, want := range map[string]string{
		"/api/attribution?i=0&method=Magic":                    "unknown method",
		"/api/attribution?i=99&method=Saliency":                "no example 99",
		"/api/attribution?i=0&method=Saliency&param=n_steps=3": "has no parameter",
		"/api/attribution?i=0&method=Saliency&sign=sideways":   "unknown sign",
		"/api/attribution?i=0&method=Saliency&target=7":        "out of range",
		"/api/examples?class=square":                           "want a class number",
		"/api/picture?i=-1":                                    "no example -1",
	} {
		code, _, body := get(t, h, url)
		if code < 400 || !strings.Contains(string(body), want) {
			t.Errorf("%s: %d %q, want an error mentioning %q", url, code, body, want)
		}
	}
}

func TestNewErrors(t *testing.T) {
	m, _ := demo.Model()
	nt, _ := attr.NewNet(m)
	x := tensor.New(1, 3, demo.Size, demo.Size)
	if _, err := New(context.Background(), nt, nil, nil, nil); err == nil {
		t.Error("no examples: no error")
	}
	if _, err := New(context.Background(), nt, nil, []Example{{ID: "two", Inputs: []*tensor.Tensor{x, x}}}, nil); err == nil || !strings.Contains(err.Error(), "2 inputs") {
		t.Errorf("two inputs for one: %v", err)
	}
	if _, err := New(context.Background(), nt, nil, []Example{{ID: "small", Inputs: []*tensor.Tensor{tensor.New(1, 3, 5, 5)}}}, nil); err == nil || !strings.Contains(err.Error(), "small") {
		t.Errorf("wrong size: %v", err)
	}
	good := Example{ID: "good", Inputs: []*tensor.Tensor{x}}
	bad := Example{ID: "small", Inputs: []*tensor.Tensor{tensor.New(1, 3, 5, 5)}}
	if _, err := New(context.Background(), nt, nil, []Example{good, good, bad, bad}, nil); err == nil || !strings.Contains(err.Error(), "example 2 (small)") {
		t.Errorf("wrong size after two good examples: %v", err)
	}
}

// Concurrent requests, some for the same figure, give the same bytes as
// one request alone (run under -race in CI).
func TestConcurrentRequests(t *testing.T) {
	s := testServer(t)
	h := handler(t, s)
	urls := []string{"/api/attribution?i=0&method=Saliency", "/api/attribution?i=1&method=InputXGradient&sign=all&view=heat_map"}
	want := make([][]byte, len(urls))
	for k, u := range urls {
		_, _, want[k] = get(t, h, u)
	}
	s.cache = map[string][]byte{} // draw them again, concurrently
	s.order = nil
	var wg sync.WaitGroup
	for r := 0; r < 8; r++ {
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
