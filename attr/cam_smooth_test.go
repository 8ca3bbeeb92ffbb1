package attr

import (
	"context"
	"testing"

	"github.com/loupe-ml/loupe/tensor"
)

// AugSmooth's cam is the mean of the method's cams on the six augmented
// images (flipped back), each run on its own; with no target each
// augmented image explains its own top class.
func TestAugSmooth(t *testing.T) {
	ctx := context.Background()
	nt := net(t, "cnn_s0.onnx")
	x := randn(6, 1, 2, 3, 32, 32)
	for _, o := range []Options{{Target: Classes(3, 8)}, {}} {
		for name, m := range map[string]Method{
			"GradCAM":  &GradCAM{Net: nt, Layers: []string{"relu2"}},
			"ScoreCAM": &ScoreCAM{Net: nt, Layers: []string{"relu1"}, BatchSize: 7},
		} {
			got, err := (&AugSmooth{CAM: m}).Attribute(ctx, []*tensor.Tensor{x}, o)
			if err != nil {
				t.Fatal(err)
			}
			want := tensor.New(2, 32, 32)
			for _, flip := range []bool{false, true} {
				for _, f := range []float32{0.9, 1, 1.1} {
					xa := x.Clone()
					for i := range xa.F {
						c := i % 32
						if flip {
							c = 31 - c
						}
						xa.F[i] = x.F[i-i%32+c] * f
					}
					r, err := m.Attribute(ctx, []*tensor.Tensor{xa}, o)
					if err != nil {
						t.Fatal(err)
					}
					for i := range want.F {
						c := i % 32
						if flip {
							c = 31 - c
						}
						want.F[i] += r.Attributions[0].F[i-i%32+c]
					}
				}
			}
			for i := range want.F {
				want.F[i] /= 6
			}
			if d := tensor.MaxAbsDiff(got.Attributions[0].F, want.F); d > 1e-6 {
				t.Errorf("%s, target %v: AugSmooth differs from six separate runs by %g", name, o.Target, d)
			}
		}
	}
	if _, err := (&AugSmooth{}).Attribute(ctx, []*tensor.Tensor{x}, Options{}); err == nil {
		t.Error("no CAM: no error")
	}
	if _, err := (&AugSmooth{CAM: &GradCAM{Net: nt}}).Attribute(ctx, []*tensor.Tensor{randn(1, 1, 2, 3072)}, Options{}); err == nil {
		t.Error("a flat input: no error")
	}
}
