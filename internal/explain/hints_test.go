package explain

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/internal/demo"
	"github.com/loupe-ml/loupe/internal/testmodels"
	"github.com/loupe-ml/loupe/tensor"
)

// Misspelt method and parameter names get the nearest known ones.
func TestDidYouMean(t *testing.T) {
	for _, tc := range []struct {
		method string
		params []string
		want   string
	}{
		{"IntegratedGradient", nil, "did you mean IntegratedGradients?"},
		{"gradcam", nil, "did you mean GradCAM"},
		{"IntegratedGradients", []string{"n_step=3"}, `no parameter "n_step" (did you mean n_steps?)`},
		{"Occlusion", []string{"stride=3"}, "did you mean strides?"},
	} {
		_, _, err := Resolve(tc.method, tc.params)
		var re *RequestError
		if !errors.As(err, &re) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Resolve(%s, %v): %v, want %q", tc.method, tc.params, err, tc.want)
		}
	}
	if _, _, err := Resolve("Frobnicate", nil); err == nil || strings.Contains(err.Error(), "did you mean") {
		t.Errorf("a name near nothing: %v", err)
	}
	if got := Nearest("conv", []string{"conv1", "conv2", "fc"}); !reflect.DeepEqual(got, []string{"conv1", "conv2"}) {
		t.Errorf("Nearest(conv) = %v", got)
	}
}

// Inputs of the wrong size are refused in the caller's shapes, before a
// method expands the batch.
func TestShapeError(t *testing.T) {
	nt, _ := demoNet(t)
	x := tensor.New(1, 3, 30, 40)
	_, err := Run(context.Background(), nt, []*tensor.Tensor{x}, Request{Method: "IntegratedGradients", Target: Class(1)})
	var se *ShapeError
	if !errors.As(err, &se) || !reflect.DeepEqual(se.Got, []int{1, 3, 30, 40}) || se.Want[2] != demo.Size {
		t.Fatalf("error %v, want a ShapeError for [1 3 30 40]", err)
	}
	if !strings.Contains(err.Error(), "[1 3 30 40]") {
		t.Errorf("error %q does not name the caller's shape", err)
	}
}

// Delta asks for the convergence delta; NoFiles refuses file parameters.
func TestDeltaAndNoFiles(t *testing.T) {
	nt, x := demoNet(t)
	xs := []*tensor.Tensor{x}
	res, err := Run(context.Background(), nt, xs, Request{Method: "IntegratedGradients", Params: []string{"n_steps=10"}, Target: Class(1), Delta: true})
	if err != nil {
		t.Fatal(err)
	}
	want, err := (&attr.IntegratedGradients{Net: nt, NSteps: 10}).Attribute(context.Background(), xs, attr.Options{Target: attr.Class(1), Delta: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Delta == nil || want.Delta == nil || tensor.MaxAbsDiff(res.Delta.F, want.Delta.F) != 0 {
		t.Errorf("delta %v, want %v", res.Delta, want.Delta)
	}
	if res, _ := Run(context.Background(), nt, xs, Request{Method: "IntegratedGradients", Params: []string{"n_steps=10"}, Target: Class(1)}); res.Delta != nil {
		t.Error("delta without asking")
	}
	_, err = Run(context.Background(), nt, xs, Request{Method: "FeatureAblation", Params: []string{"feature_mask=/etc/passwd"}, Target: Class(1), NoFiles: true})
	var re *RequestError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "names files") {
		t.Errorf("a file parameter with NoFiles: %v", err)
	}
}

func TestDefaultSign(t *testing.T) {
	for method, want := range map[string]string{
		"GradCAM": "positive", "LayerGradCam": "positive", "ScoreCAM": "positive", "FullGrad": "positive",
		"Saliency": "absolute_value", "GuidedBackprop": "absolute_value",
		"IntegratedGradients": "all", "Occlusion": "all", "DeepLift": "all",
	} {
		if got := DefaultSign(method, nil); got != want {
			t.Errorf("DefaultSign(%s) = %s, want %s", method, got, want)
		}
	}
	if got := DefaultSign("Saliency", map[string]string{"abs": "false"}); got != "all" {
		t.Errorf("signed Saliency: %s", got)
	}
	if TakesLayer("IntegratedGradients") || !TakesLayer("LayerGradCam") {
		t.Error("TakesLayer")
	}
}

// TopK keeps probabilities and softmaxes logits; names come from a file,
// numbered or not.
func TestTopKAndNames(t *testing.T) {
	probs, _ := tensor.FromFloat32([]float32{0.1, 0.6, 0.3}, 1, 3)
	got, err := TopK(probs, 2, []string{"a", "b", "c"})
	if err != nil || len(got[0]) != 2 || got[0][0] != (Prediction{1, float64(float32(0.6)), "b"}) || got[0][1].Index != 2 {
		t.Errorf("TopK(probabilities) = %v, %v", got, err)
	}
	logits, _ := tensor.FromFloat32([]float32{0, math.Float32frombits(0x3f317218) /* ln 2 */}, 1, 2)
	got, _ = TopK(logits, 5, nil)
	if len(got[0]) != 2 || got[0][0].Index != 1 || math.Abs(got[0][0].Prob-2.0/3) > 1e-6 || got[0][0].Label() != "1" {
		t.Errorf("TopK(logits) = %v", got)
	}
	dir := t.TempDir()
	for text, want := range map[string][]string{
		"cat\ndog\n\n":          {"cat", "dog"},
		"0 tench\n1 goldfish\n": {"tench", "goldfish"},
		"0,tench\n1,goldfish\n": {"tench", "goldfish"},
		"10 things\n11 more\n":  {"10 things", "11 more"},
	} {
		f := filepath.Join(dir, "names.txt")
		os.WriteFile(f, []byte(text), 0o644)
		if got, err := ReadClassNames(f); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ReadClassNames(%q) = %v, %v; want %v", text, got, err, want)
		}
	}
	if _, err := ReadClassNames(filepath.Join(dir, "nope.txt")); err == nil {
		t.Error("missing names file: no error")
	}
}

// A model that fails inside a method's expanded batch (here an extra
// input of the wrong width) is reported on the caller's batch, not on the
// n_steps × N rows the method made.
func TestErrorInCallersBatch(t *testing.T) {
	m, err := engine.Load(testmodels.Path("masked_s0.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	nt, err := attr.NewNet(m, "mask")
	if err != nil {
		t.Fatal(err)
	}
	x, mask := tensor.New(2, 6), tensor.New(2, 5)
	_, err = Run(context.Background(), nt, []*tensor.Tensor{x}, Request{Method: "IntegratedGradients", Params: []string{"n_steps=10"}, Target: Class(1), Additional: []*tensor.Tensor{mask}})
	if err == nil || !strings.Contains(err.Error(), "the model on inputs of shape [2 6]") || strings.Contains(err.Error(), "[20 6]") {
		t.Errorf("error %v, want it on the caller's batch [2 6]", err)
	}
}

// Predict gives the classes TopClasses gives, named, most probable first.
func TestPredict(t *testing.T) {
	nt, x := demoNet(t)
	preds, err := Predict(context.Background(), nt, []*tensor.Tensor{x}, nil, 2, demo.Classes)
	if err != nil {
		t.Fatal(err)
	}
	y, _ := nt.Eval(context.Background(), []*tensor.Tensor{x})
	top, probs, _ := attr.TopClasses(y)
	for e, p := range preds {
		if len(p) != 2 || p[0].Index != top[e] || math.Abs(p[0].Prob-probs[e]) > 1e-9 || p[0].Name != demo.Classes[top[e]] || p[1].Prob > p[0].Prob {
			t.Errorf("example %d: %v, want class %d (%g) first", e, p, top[e], probs[e])
		}
	}
	if _, err := Predict(context.Background(), nt, []*tensor.Tensor{tensor.New(1, 3, 5, 5)}, nil, 2, nil); err == nil || !strings.Contains(err.Error(), "[1 3 5 5]") {
		t.Errorf("a wrong shape: %v", err)
	}
}
