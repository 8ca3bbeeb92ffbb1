package nnops

import (
	"testing"

	"github.com/loupe-ml/loupe/engine/internal/op/optest"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

func TestResizeForward(t *testing.T) {
	x23 := seq(1, 1, 2, 3)
	none := (*tensor.Tensor)(nil)
	emptyF := tensor.New(0)
	sizes := func(v ...int64) *tensor.Tensor { return it(v...) }
	scales := func(v ...float32) *tensor.Tensor { return ft([]int{len(v)}, v...) }
	ph := aStr("coordinate_transformation_mode", "pytorch_half_pixel")
	lin := aStr("mode", "linear")
	tests := []struct {
		name  string
		op    string
		opset int
		attrs []*graph.Attr
		in    []*tensor.Tensor
		shape []int
		want  []float32 // from torch.nn.functional.interpolate where noted
	}{
		// torch bilinear, align_corners=False
		{"bilinear pytorch_half_pixel", "Resize", 13, []*graph.Attr{lin, ph}, []*tensor.Tensor{x23, none, none, sizes(1, 1, 3, 5)},
			[]int{1, 1, 3, 5}, []float32{1, 1.4, 2, 2.6, 3, 2.5, 2.9, 3.5, 4.1, 4.5, 4, 4.4, 5, 5.6, 6}},
		{"bilinear half_pixel", "Resize", 11, []*graph.Attr{lin}, []*tensor.Tensor{x23, emptyF, emptyF, sizes(1, 1, 3, 5)},
			[]int{1, 1, 3, 5}, []float32{1, 1.4, 2, 2.6, 3, 2.5, 2.9, 3.5, 4.1, 4.5, 4, 4.4, 5, 5.6, 6}},
		// torch bilinear, align_corners=True
		{"bilinear align_corners", "Resize", 13, []*graph.Attr{lin, aStr("coordinate_transformation_mode", "align_corners")},
			[]*tensor.Tensor{x23, none, none, sizes(1, 1, 3, 5)},
			[]int{1, 1, 3, 5}, []float32{1, 1.5, 2, 2.5, 3, 2.5, 3, 3.5, 4, 4.5, 4, 4.5, 5, 5.5, 6}},
		// torch nearest
		{"nearest asymmetric floor", "Resize", 13, []*graph.Attr{aStr("coordinate_transformation_mode", "asymmetric"), aStr("nearest_mode", "floor")},
			[]*tensor.Tensor{x23, none, none, sizes(1, 1, 3, 5)},
			[]int{1, 1, 3, 5}, []float32{1, 1, 2, 2, 3, 1, 1, 2, 2, 3, 4, 4, 5, 5, 6}},
		{"nearest 5 to 8", "Resize", 13, []*graph.Attr{aStr("coordinate_transformation_mode", "asymmetric"), aStr("nearest_mode", "floor")},
			[]*tensor.Tensor{seq(1, 1, 5), none, none, sizes(1, 1, 8)}, []int{1, 1, 8}, []float32{1, 1, 2, 2, 3, 4, 4, 5}},
		// torch linear 1-D, scale_factor 2, then size 3
		{"linear 1-D scales", "Resize", 13, []*graph.Attr{lin, ph}, []*tensor.Tensor{seq(1, 1, 4), none, scales(1, 1, 2)},
			[]int{1, 1, 8}, []float32{1, 1.25, 1.75, 2.25, 2.75, 3.25, 3.75, 4}},
		{"linear 1-D down", "Resize", 13, []*graph.Attr{lin, ph}, []*tensor.Tensor{seq(1, 1, 5), none, none, sizes(1, 1, 3)},
			[]int{1, 1, 3}, []float32{4.0 / 3, 3, 14.0 / 3}},
		{"pytorch_half_pixel to size 1", "Resize", 13, []*graph.Attr{lin, ph}, []*tensor.Tensor{seq(1, 1, 4), none, none, sizes(1, 1, 1)},
			[]int{1, 1, 1}, []float32{1}},
		{"round_prefer_floor", "Resize", 13, nil, []*tensor.Tensor{seq(4), none, none, sizes(2)}, []int{2}, []float32{1, 3}},
		{"round_prefer_ceil", "Resize", 13, []*graph.Attr{aStr("nearest_mode", "round_prefer_ceil")}, []*tensor.Tensor{seq(4), none, none, sizes(2)}, []int{2}, []float32{2, 4}},
		{"ceil asymmetric", "Resize", 13, []*graph.Attr{aStr("nearest_mode", "ceil"), aStr("coordinate_transformation_mode", "asymmetric")},
			[]*tensor.Tensor{seq(5), none, scales(0.6)}, []int{3}, []float32{1, 3, 5}},
		{"round half_pixel up", "Resize", 12, nil, []*tensor.Tensor{seq(2), emptyF, scales(3)}, []int{6}, []float32{1, 1, 1, 2, 2, 2}},
		{"tf_half_pixel_for_nn", "Resize", 13, []*graph.Attr{aStr("coordinate_transformation_mode", "tf_half_pixel_for_nn")},
			[]*tensor.Tensor{seq(4), none, scales(0.5)}, []int{2}, []float32{2, 4}},
		{"opset 10 linear", "Resize", 10, []*graph.Attr{lin}, []*tensor.Tensor{seq(4), scales(2)}, []int{8}, []float32{1, 1.5, 2, 2.5, 3, 3.5, 4, 4}},
		{"opset 10 nearest down", "Resize", 10, nil, []*tensor.Tensor{seq(4), scales(0.5)}, []int{2}, []float32{1, 3}},
		{"axes", "Resize", 18, []*graph.Attr{aInts("axes", -1)}, []*tensor.Tensor{seq(2, 2), none, scales(2)}, []int{2, 4}, []float32{1, 1, 2, 2, 3, 3, 4, 4}},
		{"not_larger", "Resize", 18, []*graph.Attr{aStr("keep_aspect_ratio_policy", "not_larger"), aStr("nearest_mode", "floor"), aStr("coordinate_transformation_mode", "asymmetric")},
			[]*tensor.Tensor{seq(1, 2), none, none, sizes(4, 8)}, []int{4, 8}[:2:2], nil},
		{"identity", "Resize", 13, nil, []*tensor.Tensor{seq(2, 2), none, scales(1, 1)}, []int{2, 2}, []float32{1, 2, 3, 4}},
		{"upsample 9", "Upsample", 9, nil, []*tensor.Tensor{seq(1, 1, 2, 2), scales(1, 1, 2, 2)},
			[]int{1, 1, 4, 4}, []float32{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}},
		{"upsample 7", "Upsample", 7, []*graph.Attr{aFloats("scales", 1, 2), aStr("mode", "bilinear")}, []*tensor.Tensor{seq(1, 2)},
			[]int{1, 4}, []float32{1, 1.5, 2, 2}},
	}
	for _, c := range tests {
		t.Run(c.name, func(t *testing.T) {
			out := forward(t, build(t, mk(c.op, len(c.in), 1, c.attrs...), c.opset), c.in...)
			if c.want == nil {
				// not_larger: scale min(4/1, 8/2) = 4 gives [4, 8].
				if !tensor.SameShape(out[0].Shape, []int{4, 8}) {
					t.Fatalf("shape %v", out[0].Shape)
				}
				return
			}
			near(t, "Y", out[0], c.shape, c.want, 1e-6)
		})
	}
}

func TestResizeGrad(t *testing.T) {
	tests := []struct {
		name  string
		attrs []*graph.Attr
		size  []int64
	}{
		{"bilinear up", []*graph.Attr{aStr("mode", "linear")}, []int64{2, 2, 5, 7}},
		{"bilinear down", []*graph.Attr{aStr("mode", "linear"), aStr("coordinate_transformation_mode", "align_corners")}, []int64{2, 2, 2, 3}},
		{"nearest", nil, []int64{2, 2, 7, 2}},
		{"nearest batch", []*graph.Attr{aStr("nearest_mode", "floor")}, []int64{3, 2, 4, 5}},
	}
	for _, c := range tests {
		t.Run(c.name, func(t *testing.T) {
			k := build(t, mk("Resize", 4, 1, c.attrs...), 13)
			optest.GradCheck(t, k, []*tensor.Tensor{optest.Rand(1, 2, 2, 3, 4), nil, nil, it(c.size...)}, []int{0}, optest.Options{})
		})
	}
	k := build(t, mk("Upsample", 2, 1, aStr("mode", "linear")), 9)
	optest.GradCheck(t, k, []*tensor.Tensor{optest.Rand(2, 1, 2, 3), ft([]int{3}, 1, 2, 1.5)}, []int{0}, optest.Options{})
}

func TestResizeErrors(t *testing.T) {
	for _, c := range []struct {
		n     *graph.Node
		opset int
	}{
		{mk("Resize", 2, 1, aStr("mode", "cubic")), 13},
		{mk("Resize", 2, 1, aStr("coordinate_transformation_mode", "tf_crop_and_resize")), 13},
		{mk("Resize", 2, 1, aStr("nearest_mode", "up")), 13},
		{mk("Resize", 2, 1, aInt("antialias", 1)), 18},
		{mk("Upsample", 1, 1), 7},
		{mk("Upsample", 2, 1, aStr("mode", "cubic")), 9},
	} {
		if _, err := factory(t, c.n.OpType)(c.n, c.opset); err == nil {
			t.Errorf("%s factory accepted %v", c.n.OpType, c.n.Attrs)
		}
	}
	k := build(t, mk("Resize", 4, 1), 13)
	wantErr(t, k, "neither", seq(2, 2), nil, nil, nil)
	wantErr(t, k, "scales", seq(2, 2), nil, ft([]int{3}, 1, 1, 1))
	wantErr(t, k, "positive", seq(2, 2), nil, ft([]int{2}, 1, -1))
	wantErr(t, k, "sizes", seq(2, 2), nil, nil, it(2))
	wantErr(t, k, "float32", it(2, 2), nil, nil, it(2))
}
