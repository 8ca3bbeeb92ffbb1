package attr

import (
	"context"
	"math"
	"slices"
	"testing"

	"github.com/loupe-ml/loupe/tensor"
)

// AblationCAM with ratio_channels_to_ablate below 1 ablates the channels
// pytorch-grad-cam's AblationLayer.activations_to_be_ablated picks (the
// lists below were printed by the library's own function, run on these
// activations of cnn's relu2), and its map is the sum over the ablated
// channels of w_c A_c, with the scores s_c computed here by injecting the
// ablated layer into the net; above 0.5 the library's assembly stops at
// the first channel listed twice.
func TestAblationCAMRatio(t *testing.T) {
	ctx := context.Background()
	nt := net(t, "cnn_s0.onnx")
	x := randn(4, 1, 2, 3, 32, 32)
	o := Options{Target: Classes(1, 2)}
	names, err := nt.camLayers("AblationCAM", []string{"relu2"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := nt.camPass(ctx, "AblationCAM", []*tensor.Tensor{x}, o, names, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := r.acts[0]
	library := map[float64][2][]int{
		0.1:  {{13, 15}, {13, 6}},
		0.25: {{13, 12, 10, 7, 15, 1, 14, 6}, {13, 12, 10, 7, 6, 3, 14, 11}},
		0.5:  {{13, 12, 10, 7, 0, 4, 8, 3, 15, 1, 14, 6, 2, 11, 9, 5}, {13, 12, 10, 7, 5, 4, 0, 15, 6, 3, 14, 11, 2, 8, 1, 9}},
		0.6:  {{13, 12, 10, 7, 0, 4, 8, 3, 5, 15, 1, 14, 6, 2, 11, 9, 5, 3}, {13, 12, 10, 7, 5, 4, 0, 15, 9, 6, 3, 14, 11, 2, 8, 1, 9, 15}},
	}
	for ratio, want := range library {
		for e := 0; e < 2; e++ {
			if got := channelsToAblate(a, e, ratio); !slices.Equal(got, want[e]) {
				t.Errorf("ratio %g example %d: ablates %v, the library %v", ratio, e, got, want[e])
			}
		}
	}
	c, lh, lw := a.Shape[1], a.Shape[2], a.Shape[3]
	sp := lh * lw
	s0, err := Select(r.out, o.Target, 2)
	if err != nil {
		t.Fatal(err)
	}
	// s_c by injection, one example and channel at a time.
	score := func(e, ch int) float64 {
		v := tensor.New(1, c, lh, lw)
		copy(v.F, a.F[e*c*sp:(e+1)*c*sp])
		clear(v.F[ch*sp : (ch+1)*sp])
		one := *nt
		one.Inject = map[string]*tensor.Tensor{names[0]: v}
		xe := tensor.New(1, 3, 32, 32)
		copy(xe.F, x.F[e*3072:(e+1)*3072])
		out, err := one.Eval(ctx, []*tensor.Tensor{xe})
		if err != nil {
			t.Fatal(err)
		}
		return float64(out.F[[]int{1, 2}[e]])
	}
	for _, ratio := range []float64{0.25, 0.6} {
		res, err := (&AblationCAM{Net: nt, Layers: []string{"relu2"}, RatioChannelsToAblate: ratio, BatchSize: 5}).Attribute(ctx, []*tensor.Tensor{x}, o)
		if err != nil {
			t.Fatal(err)
		}
		for e := 0; e < 2; e++ {
			weighted := map[int]bool{}
			for _, ch := range library[ratio][e] {
				weighted[ch] = true
			}
			if ratio == 0.6 {
				// Sorted, the list repeats a channel; channels after the
				// first repeat get no weight.
				s := slices.Clone(library[ratio][e])
				slices.Sort(s)
				stop := c
				for i := 1; i < len(s); i++ {
					if s[i] == s[i-1] {
						stop = s[i] + 1
						break
					}
				}
				for ch := stop; ch < c; ch++ {
					delete(weighted, ch)
				}
			}
			want := make([]float64, sp)
			for ch := range weighted {
				s := float64(s0[e])
				w := (s - float64(float32(score(e, ch)))) / s
				for p := 0; p < sp; p++ {
					want[p] += w * float64(a.F[(e*c+ch)*sp+p])
				}
			}
			got := res.Maps[0].F[e*sp : (e+1)*sp]
			for p := range want {
				if math.Abs(float64(got[p])-want[p]) > 1e-4*(1+math.Abs(want[p])) {
					t.Fatalf("ratio %g example %d: cam_layer[%d] = %g, want %g", ratio, e, p, got[p], want[p])
				}
			}
		}
	}
}
