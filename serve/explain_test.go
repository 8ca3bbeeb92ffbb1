package serve

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/internal/testmodels"
	"github.com/loupe-ml/loupe/tensor"
)

// TestForwardReused checks that the explanation runs with the classes the
// prediction's forward pass found, as explicit targets (explain.Run then
// does not run the model again to find them), and on the rows explain_if
// keeps, with the baselines' rows of those examples.
func TestForwardReused(t *testing.T) {
	s := newTestServer(t, Config{})
	m, _ := engine.Load(testmodels.Path("cnn_s0.onnx"))
	nt, _ := attr.NewNet(m)
	imgs := [][][][]float64{image(1), image(2), image(3)}
	var flat []float32
	for _, im := range imgs {
		flat = append(flat, flatOf(im)...)
	}
	x, _ := tensor.FromFloat32(flat, 3, 3, 32, 32)
	y, _ := nt.Eval(context.Background(), []*tensor.Tensor{x})
	top, prob, _ := attr.TopClasses(y)

	var seen []string
	s.attribute = func(ctx context.Context, j *job) (*attr.Result, error) {
		if j.run.Target.IsPredicted() {
			t.Errorf("the method was asked for the predicted class: the model would run again")
		}
		seen = append(seen, j.run.Target.String())
		return s.runMethod(ctx, j)
	}
	code, body := call(t, s, "POST", "/v1/models/cnn:explain", map[string]any{"instances": imgs, "method": "Saliency"})
	if code != 200 {
		t.Fatalf("%d %v", code, body)
	}
	var parts []string
	for _, c := range top {
		parts = append(parts, strconv.Itoa(c))
	}
	want := strings.Join(parts, ",")
	if len(seen) != 1 || seen[0] != want {
		t.Errorf("targets given to the method %v, want %q", seen, want)
	}

	// explain_if keeps the examples at or above the middle probability:
	// the method sees only their rows, targets and baselines.
	lo, hi := min(prob[0], prob[1], prob[2]), max(prob[0], prob[1], prob[2])
	mid := (lo + hi) / 2
	var keep []int
	for e, p := range prob {
		if p >= mid {
			keep = append(keep, e)
		}
	}
	seen = nil
	var rows, baseRows int
	s.attribute = func(ctx context.Context, j *job) (*attr.Result, error) {
		seen = append(seen, j.run.Target.String())
		rows, baseRows = j.attributed[0].Shape[0], j.run.Baselines[0].Shape[0]
		return s.runMethod(ctx, j)
	}
	code, body = call(t, s, "POST", "/v1/models/cnn:explain", map[string]any{"instances": imgs, "method": "IntegratedGradients",
		"params": map[string]any{"n_steps": 4, "baselines": imgs}, "explain_if": map[string]any{"min_probability": mid}})
	if code != 200 {
		t.Fatalf("%d %v", code, body)
	}
	if rows != len(keep) || baseRows != len(keep) {
		t.Errorf("the method saw %d rows and %d rows of baselines, want %d", rows, baseRows, len(keep))
	}
	if body["params"].(map[string]any)["baselines"] != "given" {
		t.Errorf("params: %v", body["params"])
	}
	// Baselines equal to the inputs: attributions and delta all zero.
	for _, e := range keep {
		x := body["explanations"].([]any)[e].(map[string]any)
		for _, v := range floats(x["attributions"]) {
			if v != 0 {
				t.Fatalf("example %d: attribution %v with the input as its baseline", e, v)
			}
		}
	}
}

// TestTargets reads every form of target, as explain.ParseTarget reads
// text, and reports the convergence delta only of methods that have one.
func TestTargets(t *testing.T) {
	s := newTestServer(t, Config{})
	imgs := [][][][]float64{image(1), image(2)}
	for _, c := range []struct {
		target any
		want   []float64
	}{
		{4, []float64{4, 4}},
		{[]int{3, 7}, []float64{3, 7}},
		{"3,7", []float64{3, 7}},
		{"5", []float64{5, 5}},
		{"(6)", []float64{6, 6}},
	} {
		code, body := call(t, s, "POST", "/v1/models/cnn:explain", map[string]any{"instances": imgs, "method": "Saliency", "target": c.target})
		if code != 200 {
			t.Errorf("target %v: %d %v", c.target, code, body)
			continue
		}
		for e, ex := range body["explanations"].([]any) {
			if got := ex.(map[string]any)["target"]; got != c.want[e] {
				t.Errorf("target %v, example %d: %v, want %v", c.target, e, got, c.want[e])
			}
		}
	}
	for _, c := range []struct {
		target any
		says   string
	}{
		{"3,7,1", "3 indices for 2 examples"},
		{"cat", `"cat" is not an index`},
		{2.5, "target 2.5: want an output index"},
		{"(1,2)", "2 indices for outputs of shape [10]"},
	} {
		code, body := call(t, s, "POST", "/v1/models/cnn:explain", map[string]any{"instances": imgs, "method": "Saliency", "target": c.target})
		if msg, _ := body["error"].(string); code != 400 || !strings.Contains(msg, c.says) {
			t.Errorf("target %v: %d %q, want 400 saying %q", c.target, code, msg, c.says)
		}
	}
	// Target none reaches the method, which refuses it for a model of
	// two outputs (toy's).
	code, body := call(t, s, "POST", "/v1/models/toy:explain", `{"instances": [[1,2,3]], "method": "Saliency", "target": "none"}`)
	if msg, _ := body["error"].(string); code != 400 || !strings.Contains(msg, "none given") {
		t.Errorf("target none: %d %v", code, body)
	}
	// NoiseTunnel around Saliency has no delta (and does not fail for
	// lack of one); around IntegratedGradients its delta is per noisy
	// copy, not per example, and not reported.
	code, body = call(t, s, "POST", "/v1/models/cnn:explain", map[string]any{"instances": imgs, "method": "NoiseTunnel", "params": map[string]any{"nt_samples": 2}})
	if code != 200 {
		t.Fatalf("NoiseTunnel: %d %v", code, body)
	}
	if x := body["explanations"].([]any)[0].(map[string]any); x["delta"] != nil {
		t.Errorf("NoiseTunnel around Saliency: delta %v", x["delta"])
	}
	// Misspelt names get the nearest; a method name near none gets them all.
	for _, c := range []struct{ req, says string }{
		{`{"instances": [[1,2,3]], "method": "Saliency", "params": {"ab": true}}`, "did you mean abs?"},
		{`{"instances": [[1,2,3]], "method": "IntegratedGradient"}`, `unknown method "IntegratedGradient" (did you mean IntegratedGradients?)`},
		{`{"instances": [[1,2,3]], "method": "Magic"}`, "(loupe has "},
	} {
		code, body := call(t, s, "POST", "/v1/models/toy:explain", c.req)
		if msg, _ := body["error"].(string); code != 400 || !strings.Contains(msg, c.says) {
			t.Errorf("%s: %d %q, want 400 saying %q", c.req, code, msg, c.says)
		}
	}
}
