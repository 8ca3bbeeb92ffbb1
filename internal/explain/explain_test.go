package explain

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/internal/demo"
	"github.com/loupe-ml/loupe/internal/methods"
	"github.com/loupe-ml/loupe/tensor"
)

// demoNet returns the built-in model and two of its images, a disc and a
// triangle, as one batch.
func demoNet(t *testing.T) (*attr.Net, *tensor.Tensor) {
	t.Helper()
	var nt *attr.Net
	m, err := demo.Model()
	if err == nil {
		nt, err = attr.NewNet(m)
	}
	if err != nil {
		t.Fatal(err)
	}
	x := tensor.New(2, 3, demo.Size, demo.Size)
	for e, class := range []int{1, 2} {
		img, _ := demo.Draw(class, uint64(30+e))
		copy(x.F[e*img.Len():], img.F)
	}
	return nt, x
}

// Run gives what the attr method called directly gives.
func TestRunMatchesAttr(t *testing.T) {
	nt, x := demoNet(t)
	xs := []*tensor.Tensor{x}
	cases := []struct {
		req     Request
		want    attr.Method
		o       attr.Options
		targets [][]int
	}{
		{Request{Method: "IntegratedGradients", Params: []string{"n_steps=20"}, Target: Class(2)},
			&attr.IntegratedGradients{Net: nt, NSteps: 20}, attr.Options{Target: attr.Class(2)}, [][]int{{2}, {2}}},
		{Request{Method: "Saliency", Params: []string{"abs=false"}, Target: Target{each: [][]int{{1}, {0}}}},
			&attr.Saliency{Net: nt, Signed: true}, attr.Options{Target: attr.Classes(1, 0)}, [][]int{{1}, {0}}},
		{Request{Method: "LayerGradCam", Layer: "conv2", Params: []string{"relu_attributions=true"}, Target: Class(1)},
			&attr.LayerGradCam{Net: nt, Layer: "conv2", ReluAttributions: true}, attr.Options{Target: attr.Class(1)}, [][]int{{1}, {1}}},
		{Request{Method: "Occlusion", Params: []string{"sliding_window_shapes=3,8,8", "strides=3,8,8"}, Target: Class(0), Baseline: 0.25},
			&attr.Occlusion{Model: nt, SlidingWindowShapes: [][]int{{3, 8, 8}}, Strides: [][]int{{3, 8, 8}}},
			attr.Options{Target: attr.Class(0), Baselines: []*tensor.Tensor{tensor.Scalar(0.25)}}, [][]int{{0}, {0}}},
		// A distribution method gets zeros and the baseline value.
		{Request{Method: "GradientShap", Target: Class(2), Baseline: 0.5},
			&attr.GradientShap{Net: nt, NSamples: 5, Stdevs: []float64{0}},
			attr.Options{Target: attr.Class(2), Baselines: methods.DefaultDistribution(xs, 0.5)}, [][]int{{2}, {2}}},
		// Baselines given are used as they are.
		{Request{Method: "DeepLiftShap", Target: Class(1), Baselines: []*tensor.Tensor{tensor.New(3, 3, demo.Size, demo.Size)}},
			&attr.DeepLiftShap{Net: nt}, attr.Options{Target: attr.Class(1), Baselines: []*tensor.Tensor{tensor.New(3, 3, demo.Size, demo.Size)}}, [][]int{{1}, {1}}},
	}
	for _, tc := range cases {
		got, err := Run(context.Background(), nt, xs, tc.req)
		if err != nil {
			t.Fatalf("%s: %v", tc.req.Method, err)
		}
		want, err := tc.want.Attribute(context.Background(), xs, tc.o)
		if err != nil {
			t.Fatal(err)
		}
		a, b := got.Attributions[0], want.Attributions[0]
		if !tensor.SameShape(a.Shape, b.Shape) || tensor.MaxAbsDiff(a.F, b.F) != 0 {
			t.Errorf("%s: differs from the attr method called directly", tc.req.Method)
		}
		if !reflect.DeepEqual(got.Targets, tc.targets) {
			t.Errorf("%s: targets %v, want %v", tc.req.Method, got.Targets, tc.targets)
		}
	}
}

// The effective parameters are the defaults with the request's overlaid.
func TestRunParams(t *testing.T) {
	nt, x := demoNet(t)
	r, err := Run(context.Background(), nt, []*tensor.Tensor{x}, Request{Method: "IntegratedGradients", Params: []string{"n_steps=4"}, Target: Class(0)})
	if err != nil {
		t.Fatal(err)
	}
	want := methods.Values{"n_steps": "4", "method": "gausslegendre", "internal_batch_size": "0"}
	if !reflect.DeepEqual(r.Params, want) {
		t.Errorf("params %v, want %v", r.Params, want)
	}
}

// The predicted target is the model's top class for each example.
func TestRunPredicted(t *testing.T) {
	nt, x := demoNet(t)
	xs := []*tensor.Tensor{x}
	y, err := nt.Eval(context.Background(), xs)
	if err != nil {
		t.Fatal(err)
	}
	top, _, _ := attr.TopClasses(y)
	got, err := Run(context.Background(), nt, xs, Request{Method: "InputXGradient", Target: Predicted()})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := (&attr.InputXGradient{Net: nt}).Attribute(context.Background(), xs, attr.Options{Target: attr.Classes(top...)})
	if tensor.MaxAbsDiff(got.Attributions[0].F, want.Attributions[0].F) != 0 {
		t.Error("the predicted target differs from the top classes")
	}
	if !reflect.DeepEqual(got.Targets, [][]int{{top[0]}, {top[1]}}) || top[0] != 1 || top[1] != 2 {
		t.Errorf("targets %v, top classes %v (want the disc and the triangle)", got.Targets, top)
	}
}

func TestRunErrors(t *testing.T) {
	nt, x := demoNet(t)
	xs := []*tensor.Tensor{x}
	for _, tc := range []struct {
		req     Request
		inputs  []*tensor.Tensor
		request bool // a RequestError
		want    string
	}{
		{Request{Method: "Magic"}, xs, true, `unknown method "Magic"`},
		{Request{Method: "Saliency", Params: []string{"n_steps=3"}}, xs, true, "has no parameter"},
		{Request{Method: "Saliency", Params: []string{"abs"}}, xs, true, "name=value"},
		{Request{Method: "IntegratedGradients", Params: []string{"n_steps=many"}}, xs, true, `n_steps="many"`},
		{Request{Method: "NeuronGradient", Params: []string{"neuron=1,2,2"}}, xs, true, "need a layer"},
		{Request{Method: "Saliency", Baselines: []*tensor.Tensor{x, x}}, xs, true, "2 baselines for 1 inputs"},
		{Request{Method: "Saliency"}, []*tensor.Tensor{x, x}, true, "takes 1 attributed inputs"},
		{Request{Method: "Saliency", Target: Class(7)}, xs, false, "out of range"},
		{Request{Method: "Saliency", Target: Predicted(), Additional: []*tensor.Tensor{x}}, xs, false, "additional inputs"},
		{Request{Method: "Saliency", Target: Target{each: [][]int{{0}, {1}, {2}}}}, xs, false, "3 targets for 2 examples"},
	} {
		_, err := Run(context.Background(), nt, tc.inputs, tc.req)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one mentioning %q", tc.req, err, tc.want)
			continue
		}
		var re *RequestError
		if errors.As(err, &re) != tc.request {
			t.Errorf("%+v: request error %v, want %v", tc.req, !tc.request, tc.request)
		}
		if errors.Is(err, ErrUnknownMethod) != (tc.req.Method == "Magic") {
			t.Errorf("%+v: %v is ErrUnknownMethod: %v", tc.req, err, !errors.Is(err, ErrUnknownMethod))
		}
	}
}

func TestRunNoModel(t *testing.T) {
	var re *RequestError
	if _, err := Run(context.Background(), nil, nil, Request{Method: "Saliency"}); !errors.As(err, &re) {
		t.Errorf("no model: %v, want a RequestError", err)
	}
}
