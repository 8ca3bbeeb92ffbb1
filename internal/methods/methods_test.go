package methods

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/internal/demo"
	"github.com/loupe-ml/loupe/npy"
	"github.com/loupe-ml/loupe/tensor"
)

// Every method builds from its defaults and explains the demo model.
func TestTableRuns(t *testing.T) {
	m, err := demo.Model()
	if err != nil {
		t.Fatal(err)
	}
	nt, err := attr.NewNet(m)
	if err != nil {
		t.Fatal(err)
	}
	img, mask := demo.Draw(0, 1)
	cy, cx, cnt := 0, 0, 0 // the shape's center, where NeuronGradient looks
	for i, in := range mask {
		if in {
			cy, cx, cnt = cy+i/demo.Size, cx+i%demo.Size, cnt+1
		}
	}
	cy, cx = cy/cnt, cx/cnt
	x, _ := img.Reshape(1, 3, demo.Size, demo.Size)
	for _, name := range Names() {
		spec, _ := Lookup(name)
		var given []string
		switch name {
		case "Occlusion":
			// The automatic window (3, Size/8, Size/8) with half strides.
		case "ShapleyValueSampling", "FeatureAblation", "Lime", "KernelShap", "FeaturePermutation":
			given = []string{fmt.Sprintf("feature_grid=%d", demo.Size/4)} // 16 features
		case "ShapleyValues":
			given = []string{fmt.Sprintf("feature_grid=%d", demo.Size/3)} // 9 features, 512 coalitions
		}
		p, err := Resolve(name, spec, given)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		layer := ""
		if spec.Layer && name != "LayerGradCam" && name != "GuidedGradCam" { // those two default to the last convolution
			layer = "conv3"
		}
		if strings.HasPrefix(name, "Neuron") {
			layer = "conv3"
			given = append(given, fmt.Sprintf("neuron=1,%d,%d", cy, cx))
			if name == "NeuronFeatureAblation" {
				given = append(given, fmt.Sprintf("feature_grid=%d", demo.Size/4))
			}
			if p, err = Resolve(name, spec, given); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		meth, err := spec.Build(nt, layer, p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		o := attr.Options{Target: attr.Class(0)}
		if spec.Distribution {
			o.Baselines = DefaultDistribution([]*tensor.Tensor{x}, 0.5) // Captum requires a distribution
		}
		in := x
		if name == "FeaturePermutation" { // shuffles across the batch
			in = tensor.New(2, 3, demo.Size, demo.Size)
			copy(in.F, x.F)
			o.Target = attr.Classes(0, 0)
		}
		r, err := meth.Attribute(context.Background(), []*tensor.Tensor{in}, o)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		a := r.Attributions[0]
		if a == nil || a.Shape[0] != in.Shape[0] {
			t.Errorf("%s: attributions %v", name, a)
			continue
		}
		if name == "NeuronGradient" {
			// conv3's neuron at (cy, cx) sees the 5x5 pixels around it
			// (1x1, then two 3x3 convolutions).
			sz := demo.Size
			nonzero := false
			for _, v := range a.F {
				nonzero = nonzero || v != 0
			}
			if !nonzero {
				t.Errorf("NeuronGradient: all zero")
			}
			for i, v := range a.F {
				y, x := i%(sz*sz)/sz, i%sz
				if (y < cy-2 || y > cy+2 || x < cx-2 || x > cx+2) && v != 0 {
					t.Errorf("NeuronGradient: pixel (%d, %d) outside the receptive field has gradient %g", y, x, v)
					break
				}
			}
		}
		if name == "Occlusion" {
			// Same answer as the window given explicitly.
			w := demo.Size / 8
			oc := &attr.Occlusion{Model: nt, SlidingWindowShapes: [][]int{{3, w, w}}, Strides: [][]int{{1, w / 2, w / 2}}}
			want, err := oc.Attribute(context.Background(), []*tensor.Tensor{x}, o)
			if err != nil || tensor.MaxAbsDiff(want.Attributions[0].F, a.F) != 0 {
				t.Errorf("Occlusion with the automatic window differs from the explicit one (%v)", err)
			}
		}
		if name == "FeatureAblation" {
			// One value per grid cell, shared by its pixels and channels.
			s := demo.Size
			if a.F[0] != a.F[(2*s+3)*s+5] {
				t.Errorf("FeatureAblation with a grid: pixels of one cell differ (%g, %g)", a.F[0], a.F[(2*s+3)*s+5])
			}
		}
	}
}

func TestResolveErrors(t *testing.T) {
	tab := table()
	if _, err := Resolve("Saliency", tab["Saliency"], []string{"n_steps=3"}); err == nil || !strings.Contains(err.Error(), "has no parameter") {
		t.Errorf("unknown parameter: %v", err)
	}
	if _, err := Resolve("IntegratedGradients", tab["IntegratedGradients"], []string{"n_steps"}); err == nil || !strings.Contains(err.Error(), "name=value") {
		t.Errorf("no value: %v", err)
	}
	p, err := Resolve("IntegratedGradients", tab["IntegratedGradients"], []string{"n_steps=abc"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tab["IntegratedGradients"].Build(nil, "", p); err == nil || !strings.Contains(err.Error(), "n_steps") {
		t.Errorf("bad integer: %v", err)
	}
	if _, err := tab["NeuronGradient"].Build(nil, "conv1", Values{"neuron": ""}); err == nil || !strings.Contains(err.Error(), "parameter neuron") {
		t.Errorf("neuron method without a neuron: %v", err)
	}
	if _, err := tab["NeuronGradient"].Build(nil, "", Values{"neuron": "1"}); err == nil || !strings.Contains(err.Error(), "need a layer") {
		t.Errorf("neuron method without a layer: %v", err)
	}
	if _, err := tab["Occlusion"].Build(nil, "", Values{"perturbations_per_eval": "0", "sliding_window_shapes": "3,x"}); err == nil || !strings.Contains(err.Error(), "sliding_window_shapes") {
		t.Errorf("Occlusion with a bad window: %v", err)
	}
}

func TestGridMask(t *testing.T) {
	m, next := GridMask([]int{2, 3, 5, 4}, 2, 7)
	if !tensor.SameShape(m.Shape, []int{1, 3, 5, 4}) || next != 7+6 {
		t.Fatalf("mask %v, next id %d", m.Shape, next)
	}
	// Pixel (4, 3) of channel 2 is in row 2, column 1 of a 3x2 grid.
	if got := m.I[(2*5+4)*4+3]; got != 7+2*2+1 {
		t.Errorf("id %d, want %d", got, 7+5)
	}
	m, next = GridMask([]int{1, 5}, 2, 0)
	if next != 3 || m.I[4] != 2 || m.I[1] != 0 {
		t.Errorf("runs: %v, next %d", m.I, next)
	}
}

func TestDefaultDistribution(t *testing.T) {
	d := DefaultDistribution([]*tensor.Tensor{tensor.New(5, 2, 3)}, 0.25)
	if !tensor.SameShape(d[0].Shape, []int{2, 2, 3}) || d[0].F[0] != 0 || d[0].F[5] != 0 || d[0].F[6] != 0.25 || d[0].F[11] != 0.25 {
		t.Errorf("distribution %v %v", d[0].Shape, d[0].F)
	}
}

// A feature mask file groups elements as it says.
func TestFeatureMaskFile(t *testing.T) {
	m, _ := demo.Model()
	nt, _ := attr.NewNet(m)
	img, _ := demo.Draw(1, 2)
	x, _ := img.Reshape(1, 3, demo.Size, demo.Size)
	mask := tensor.NewInt(1, 1, demo.Size, demo.Size) // left and right halves
	for i := range mask.I {
		if i%demo.Size >= demo.Size/2 {
			mask.I[i] = 1
		}
	}
	f := filepath.Join(t.TempDir(), "mask.npy")
	if err := npy.WriteFile(f, mask); err != nil {
		t.Fatal(err)
	}
	spec, _ := Lookup("FeatureAblation")
	p, err := Resolve("FeatureAblation", spec, []string{"feature_mask=" + f})
	if err != nil {
		t.Fatal(err)
	}
	meth, err := spec.Build(nt, "", p)
	if err != nil {
		t.Fatal(err)
	}
	r, err := meth.Attribute(context.Background(), []*tensor.Tensor{x}, attr.Options{Target: attr.Class(1)})
	if err != nil {
		t.Fatal(err)
	}
	a := r.Attributions[0].F
	left, right := a[0], a[demo.Size-1]
	for i, v := range a {
		want := left
		if i%demo.Size >= demo.Size/2 {
			want = right
		}
		if v != want {
			t.Fatalf("element %d: %g, want its half's %g", i, v, want)
		}
	}
	if _, err := spec.Build(nt, "", Values{"feature_mask": "/nonexistent.npy", "perturbations_per_eval": "0"}); err == nil || !strings.Contains(err.Error(), "nonexistent") {
		t.Errorf("missing mask file: %v", err)
	}
}

// LRP's rules come from the parameters: epsilon everywhere is the
// default, and gamma on the convolutions changes the answer.
func TestLRPRules(t *testing.T) {
	m, _ := demo.Model()
	nt, _ := attr.NewNet(m)
	img, _ := demo.Draw(2, 3)
	x, _ := img.Reshape(1, 3, demo.Size, demo.Size)
	o := attr.Options{Target: attr.Class(2)}
	run := func(given ...string) []float32 {
		t.Helper()
		spec, _ := Lookup("LRP")
		p, err := Resolve("LRP", spec, given)
		if err != nil {
			t.Fatal(err)
		}
		meth, err := spec.Build(nt, "", p)
		if err != nil {
			t.Fatal(err)
		}
		r, err := meth.Attribute(context.Background(), []*tensor.Tensor{x}, o)
		if err != nil {
			t.Fatal(err)
		}
		return r.Attributions[0].F
	}
	def, err := (&attr.LRP{Net: nt}).Attribute(context.Background(), []*tensor.Tensor{x}, o)
	if err != nil {
		t.Fatal(err)
	}
	if d := tensor.MaxAbsDiff(run(), def.Attributions[0].F); d != 0 {
		t.Errorf("default parameters differ from attr.LRP's default by %g", d)
	}
	if d := tensor.MaxAbsDiff(run("conv_rule=gamma"), def.Attributions[0].F); d == 0 {
		t.Error("gamma on the convolutions changed nothing")
	}
	spec, _ := Lookup("LRP")
	p, _ := Resolve("LRP", spec, []string{"conv_rule=zeta"})
	if _, err := spec.Build(nt, "", p); err == nil || !strings.Contains(err.Error(), "zeta") {
		t.Errorf("unknown rule: %v", err)
	}
}

// The table is built once; Names lists it in order and Lookup hands out
// copies that callers cannot change.
func TestLookupAndNames(t *testing.T) {
	names := Names()
	if len(names) != 48 || !slices.IsSorted(names) || names[0] != "AblationCAM" {
		t.Fatalf("names %v", names)
	}
	for _, n := range names {
		if s, ok := Lookup(n); !ok || s.Build == nil || s.Doc == "" {
			t.Errorf("%s: %+v %v", n, s, ok)
		}
	}
	if _, ok := Lookup("Magic"); ok {
		t.Error("Magic found")
	}
	s, _ := Lookup("IntegratedGradients")
	s.Params[0].Default = "1"
	if s, _ := Lookup("IntegratedGradients"); s.Params[0].Default != "50" {
		t.Errorf("a caller changed the table: n_steps default %q", s.Params[0].Default)
	}
	names[0] = "Zzz"
	if Names()[0] != "AblationCAM" {
		t.Error("a caller changed the names")
	}
}
