package attr

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/tensor"
)

// On a tiny ViT, GradCAM and EigenCAM of the token layer read through
// TokenGrid{Skip: 1} give the maps PyTorch computes with pytorch-grad-cam's
// ViT reshape_transform (testdata/vit_tiny.py), and AblationCAM ablates a
// channel in every patch token.
func TestTokenGrid(t *testing.T) {
	ctx := context.Background()
	m, err := engine.Load(filepath.Join("testdata", "vit_tiny.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	nt, err := NewNet(m)
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Input            []float32 `json:"input"`
		Targets          []int     `json:"targets"`
		GradCAMLayer     []float32 `json:"gradcam_layer"`
		GradCAM          []float32 `json:"gradcam"`
		EigenCAMLayerAbs []float32 `json:"eigencam_layer_abs"`
	}
	b, err := os.ReadFile(filepath.Join("testdata", "vit_tiny.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	x := tensor.New(2, 3, 16, 16)
	copy(x.F, rec.Input)
	o := Options{Target: Classes(rec.Targets...)}
	grid := &TokenGrid{Skip: 1}
	g, err := (&GradCAM{Net: nt, Layers: []string{"block"}, Reshape: grid}).Attribute(ctx, []*tensor.Tensor{x}, o)
	if err != nil {
		t.Fatal(err)
	}
	if d := tensor.MaxAbsDiff(g.Maps[0].F, rec.GradCAMLayer); d > 1e-5 {
		t.Errorf("GradCAM's layer map differs from PyTorch's by %g", d)
	}
	if d := tensor.MaxAbsDiff(g.Attributions[0].F, rec.GradCAM); d > 1e-5 {
		t.Errorf("GradCAM's cam differs from PyTorch's by %g", d)
	}
	e, err := (&EigenCAM{Net: nt, Layers: []string{"block"}, Reshape: &TokenGrid{Skip: 1, Height: 4, Width: 4}}).Attribute(ctx, []*tensor.Tensor{x}, o)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range e.Maps[0].F {
		if math.Abs(math.Abs(float64(v))-float64(rec.EigenCAMLayerAbs[i])) > 1e-4 {
			t.Fatalf("EigenCAM's |map|[%d] = %g, PyTorch's %g", i, math.Abs(float64(v)), rec.EigenCAMLayerAbs[i])
		}
	}
	// AblationCAM: example 0's channels ablated by hand (channel 3 first).
	a, err := (&AblationCAM{Net: nt, Layers: []string{"block"}, Reshape: grid}).Attribute(ctx, []*tensor.Tensor{x}, o)
	if err != nil {
		t.Fatal(err)
	}
	r, err := nt.camPass(ctx, "AblationCAM", []*tensor.Tensor{x}, o, []string{"/block/Relu_output_0"}, false, grid)
	if err != nil {
		t.Fatal(err)
	}
	raw, acts := r.raw[0], r.acts[0]
	ab := tensor.New(1, 17, 8)
	copy(ab.F, raw.F[:17*8])
	for tok := 1; tok < 17; tok++ {
		ab.F[tok*8+3] = 0
	}
	one := *nt
	one.Inject = map[string]*tensor.Tensor{"/block/Relu_output_0": ab}
	x0 := tensor.New(1, 3, 16, 16)
	copy(x0.F, x.F[:768])
	out, err := one.Eval(ctx, []*tensor.Tensor{x0})
	if err != nil {
		t.Fatal(err)
	}
	s0, sc := float64(r.out.F[rec.Targets[0]]), float64(out.F[rec.Targets[0]])
	w3 := (s0 - sc) / s0
	// The whole map of example 0, every channel's weight by hand.
	want := make([]float64, 16)
	for ch := 0; ch < 8; ch++ {
		w := w3
		if ch != 3 {
			abc := tensor.New(1, 17, 8)
			copy(abc.F, raw.F[:17*8])
			for tok := 1; tok < 17; tok++ {
				abc.F[tok*8+ch] = 0
			}
			one.Inject = map[string]*tensor.Tensor{"/block/Relu_output_0": abc}
			o2, err := one.Eval(ctx, []*tensor.Tensor{x0})
			if err != nil {
				t.Fatal(err)
			}
			w = (s0 - float64(o2.F[rec.Targets[0]])) / s0
		}
		for p := 0; p < 16; p++ {
			want[p] += w * float64(acts.F[ch*16+p])
		}
	}
	for p, v := range want {
		if math.Abs(float64(a.Maps[0].F[p])-v) > 1e-4*(1+math.Abs(v)) {
			t.Fatalf("AblationCAM's map[%d] = %g, by hand %g", p, a.Maps[0].F[p], v)
		}
	}
	for _, bad := range []*TokenGrid{{Skip: 2}, {Skip: 1, Height: 3, Width: 5}, {ChannelsLast: true}, {Skip: 17}} {
		if _, err := (&GradCAM{Net: nt, Layers: []string{"block"}, Reshape: bad}).Attribute(ctx, []*tensor.Tensor{x}, o); err == nil {
			t.Errorf("%+v: no error", *bad)
		}
	}
}
