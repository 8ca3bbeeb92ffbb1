package attr

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/tensor"
)

// GradCAM's raw layer map is LayerGradCam's for the same layer, and its
// cam is that map scaled.
func TestGradCAMIsLayerGradCam(t *testing.T) {
	nt := net(t, "cnn_s0.onnx")
	x := randn(1, 1, 3, 3, 32, 32)
	o := Options{Target: Classes(3, 7, 1)}
	ctx := context.Background()
	for _, layer := range []string{"conv2", "relu2", "relu1"} {
		g, err := (&GradCAM{Net: nt, Layers: []string{layer}}).Attribute(ctx, []*tensor.Tensor{x}, o)
		if err != nil {
			t.Fatal(err)
		}
		l, err := (&LayerGradCam{Net: nt, Layer: layer}).Attribute(ctx, []*tensor.Tensor{x}, o)
		if err != nil {
			t.Fatal(err)
		}
		want := l.Attributions[0]
		if got := g.Maps[0]; got.Len() != want.Len() || tensor.MaxAbsDiff(got.F, want.F) > 1e-6 {
			t.Errorf("%s: GradCAM's map differs from LayerGradCam's by %g", layer, tensor.MaxAbsDiff(got.F, want.F))
		}
		cam, err := ScaleCAM(g.Maps, 32, 32)
		if err != nil {
			t.Fatal(err)
		}
		if tensor.MaxAbsDiff(cam.F, g.Attributions[0].F) != 0 {
			t.Errorf("%s: the cam is not ScaleCAM of the maps", layer)
		}
	}
}

// Every CAM gives maps in [0, 1] that reach 1, one per example, the same
// whether the examples come together or one by one (and whatever the
// batch size of the perturbation CAMs).
func TestCAMsBatchAndRange(t *testing.T) {
	nt := net(t, "cnn_s0.onnx")
	x := randn(2, 1, 3, 3, 32, 32)
	targets := []int{3, 7, 1}
	ctx := context.Background()
	layers := []string{"relu1", "relu2"}
	methods := map[string]func(bs int) Method{
		"GradCAM":            func(int) Method { return &GradCAM{Net: nt, Layers: layers} },
		"GradCAM/eigen":      func(int) Method { return &GradCAM{Net: nt, Layers: layers, EigenSmooth: true} },
		"HiResCAM":           func(int) Method { return &HiResCAM{Net: nt, Layers: layers} },
		"GradCAMElementWise": func(int) Method { return &GradCAMElementWise{Net: nt, Layers: layers} },
		"GradCAMPlusPlus":    func(int) Method { return &GradCAMPlusPlus{Net: nt, Layers: layers} },
		"XGradCAM":           func(int) Method { return &XGradCAM{Net: nt, Layers: layers} },
		"LayerCAM":           func(int) Method { return &LayerCAM{Net: nt, Layers: layers} },
		"EigenCAM":           func(int) Method { return &EigenCAM{Net: nt, Layers: layers} },
		"EigenGradCAM":       func(int) Method { return &EigenGradCAM{Net: nt, Layers: layers} },
		"ScoreCAM":           func(bs int) Method { return &ScoreCAM{Net: nt, Layers: layers, BatchSize: bs} },
		"AblationCAM":        func(bs int) Method { return &AblationCAM{Net: nt, Layers: layers, BatchSize: bs} },
		"FullGrad":           func(int) Method { return &FullGrad{Net: nt} },
	}
	for name, mk := range methods {
		r, err := mk(7).Attribute(ctx, []*tensor.Tensor{x}, Options{Target: Classes(targets...)})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		cam := r.Attributions[0]
		if !tensor.SameShape(cam.Shape, []int{3, 32, 32}) {
			t.Fatalf("%s: cam of shape %v", name, cam.Shape)
		}
		for e := 0; e < 3; e++ {
			lo, hi := float32(1), float32(0)
			for _, v := range cam.F[e*1024 : (e+1)*1024] {
				lo, hi = min(lo, v), max(hi, v)
			}
			if lo != 0 || hi > 1 || hi < 0.999 {
				t.Errorf("%s: example %d's map spans [%g, %g]", name, e, lo, hi)
			}
			one, err := mk(100).Attribute(ctx, []*tensor.Tensor{gatherRows(x, []int{e})}, Options{Target: Class(targets[e])})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if d := tensor.MaxAbsDiff(one.Attributions[0].F, cam.F[e*1024:(e+1)*1024]); d > 1e-5 {
				t.Errorf("%s: example %d alone differs from the batch by %g", name, e, d)
			}
		}
	}
}

// ScaleCAM: ReLU, min-max, half-pixel bilinear resize, average, min-max.
func TestScaleCAM(t *testing.T) {
	m, _ := tensor.FromFloat32([]float32{-1, 0, 1, 3}, 1, 2, 2)
	cam, err := ScaleCAM([]*tensor.Tensor{m}, 4, 4)
	if err != nil {
		t.Fatal(err)
	}
	// relu: [0 0; 1 3] -> min-max [0 0; 1/3 1]; rows at 4: y 0,1 take row
	// 0 then 3/4 row 0 + 1/4 row 1; the max stays 1 at the corner.
	a := 1 / (3 + 3e-7)
	b := 1 / (1 + 1e-7)
	row0 := []float64{0, 0, 0, 0}
	row3 := []float64{a, a*0.75 + b*0.25, a*0.25 + b*0.75, b}
	want := [][]float64{row0, {0, 0, 0, 0}, nil, row3}
	want[1] = []float64{0.25 * row3[0], 0.25 * row3[1], 0.25 * row3[2], 0.25 * row3[3]}
	want[2] = []float64{0.75 * row3[0], 0.75 * row3[1], 0.75 * row3[2], 0.75 * row3[3]}
	for y, r := range want {
		for x, v := range r {
			v = v / (1e-7 + b) // the second min-max
			if got := float64(cam.F[y*4+x]); math.Abs(got-v) > 1e-6 {
				t.Errorf("cam[%d][%d] = %g, want %g", y, x, got, v)
			}
		}
	}
	// The same map twice averages to itself.
	two, _ := ScaleCAM([]*tensor.Tensor{m, m}, 4, 4)
	if tensor.MaxAbsDiff(two.F, cam.F) > 1e-7 {
		t.Error("two equal layers do not give the one layer's cam")
	}
	// Half-pixel resizing agrees with Interpolate's bilinear mode.
	x := randn(3, 1, 1, 1, 7, 5)
	up, _ := Interpolate(x, []int{14, 20}, "bilinear")
	src := make([]float64, 35)
	for i, v := range x.F {
		src[i] = float64(v)
	}
	dst := make([]float64, 14*20)
	resize2D(src, 7, 5, dst, 14, 20, false)
	for i, v := range dst {
		if math.Abs(v-float64(up.F[i])) > 1e-6 {
			t.Fatalf("resize2D and Interpolate differ at %d: %g, %g", i, v, up.F[i])
		}
	}
	// Aligned corners keep the corners and are linear in between.
	resize2D([]float64{0, 3}, 1, 2, dst[:4], 1, 4, true)
	for i, v := range []float64{0, 1, 2, 3} {
		if math.Abs(dst[i]-v) > 1e-12 {
			t.Errorf("aligned corners: %v", dst[:4])
		}
	}
	if _, err := ScaleCAM(nil, 4, 4); err == nil {
		t.Error("no maps: no error")
	}
}

// The projection is the first principal component's: for activations
// that vary along one direction of the channels, the map is that
// direction's coordinate, with loupe's sign.
func TestProject(t *testing.T) {
	const c, sp = 4, 6
	dir := []float64{0.5, 0.5, -0.5, 0.5} // unit, positive sum
	coord := []float64{3, -1, 2, 0, -2, -2}
	x := make([]float64, c*sp)
	for ch := 0; ch < c; ch++ {
		for s := 0; s < sp; s++ {
			x[ch*sp+s] = 10*float64(ch) + coord[s]*dir[ch]
			if s == 1 { // a little noise off the direction
				x[ch*sp+s] += 0.01 * float64(ch%2)
			}
		}
	}
	out := make([]float64, sp)
	project(x, c, sp, out)
	for s, v := range coord {
		if math.Abs(out[s]-v) > 0.02 {
			t.Fatalf("projection %v, want about %v", out, coord)
		}
	}
	// A symmetric matrix with a known top eigenvector.
	a := []float64{2, 1, 0, 1, 2, 0, 0, 0, 1}
	v := topEigenvector(a, 3)
	if math.Abs(math.Abs(v[0])-math.Sqrt(0.5)) > 1e-9 || math.Abs(v[0]-v[1]) > 1e-9 || math.Abs(v[2]) > 1e-9 {
		t.Errorf("top eigenvector %v", v)
	}
}

// Bad requests are errors that say what is wrong.
func TestCAMErrors(t *testing.T) {
	nt := net(t, "cnn_s0.onnx")
	x := randn(4, 1, 2, 3, 32, 32)
	ctx := context.Background()
	o := Options{Target: Classes(1, 2)}
	for _, c := range []struct {
		m    Method
		in   []*tensor.Tensor
		want string
	}{
		{&GradCAM{Net: nt, Layers: []string{"conv9"}}, []*tensor.Tensor{x}, "conv9"},
		{&ScoreCAM{Net: nt, Layers: []string{"relu2", "nope"}}, []*tensor.Tensor{x}, "nope"},
		{&GradCAM{Net: nt, Layers: []string{"fc"}}, []*tensor.Tensor{x}, "[N, C, h, w]"},
		{&GradCAM{Net: nt}, []*tensor.Tensor{randn(4, 1, 2, 3072)}, "image batch"},
		{&AblationCAM{Net: nt, RatioChannelsToAblate: 1.5}, []*tensor.Tensor{x}, "ratio"},
		{&GradCAM{}, []*tensor.Tensor{x}, "no Net"},
		{&FullGrad{}, []*tensor.Tensor{x}, "no Net"},
	} {
		_, err := c.m.Attribute(ctx, c.in, o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%T: error %v, want one mentioning %q", c.m, err, c.want)
		}
	}
	// No layer: the last convolution (conv2 in this model).
	a, err := (&GradCAM{Net: nt}).Attribute(ctx, []*tensor.Tensor{x}, o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := (&GradCAM{Net: nt, Layers: []string{"conv2"}}).Attribute(ctx, []*tensor.Tensor{x}, o)
	if err != nil {
		t.Fatal(err)
	}
	if tensor.MaxAbsDiff(a.Attributions[0].F, b.Attributions[0].F) != 0 {
		t.Error("GradCAM without layers is not GradCAM of the last convolution")
	}
}

// Without a target, the CAMs explain each example's top class.
func TestCAMDefaultTarget(t *testing.T) {
	nt := net(t, "cnn_s0.onnx")
	x := randn(5, 1, 3, 3, 32, 32)
	ctx := context.Background()
	y, err := nt.Eval(ctx, []*tensor.Tensor{x})
	if err != nil {
		t.Fatal(err)
	}
	top, _, err := TopClasses(y)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []Method{&GradCAM{Net: nt}, &AblationCAM{Net: nt, Layers: []string{"relu2"}}, &FullGrad{Net: nt}} {
		a, err := m.Attribute(ctx, []*tensor.Tensor{x}, Options{})
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		b, err := m.Attribute(ctx, []*tensor.Tensor{x}, Options{Target: Classes(top...)})
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		if tensor.MaxAbsDiff(a.Attributions[0].F, b.Attributions[0].F) != 0 {
			t.Errorf("%T without a target is not the top classes' map", m)
		}
	}
}
