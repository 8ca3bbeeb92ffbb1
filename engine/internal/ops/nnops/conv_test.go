package nnops

import (
	"testing"

	"github.com/loupe-ml/loupe/engine/internal/op/optest"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// refConv is a direct 2-D convolution in float64: x [N,C,H,W], w
// [M,C/g,KH,KW], pads top, left, bottom, right.
func refConv(x, w, b *tensor.Tensor, s, d [2]int, pads [4]int, group int) *tensor.Tensor {
	n, c, h, wd := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	m, cg, kh, kw := w.Shape[0], w.Shape[1], w.Shape[2], w.Shape[3]
	oh := (h+pads[0]+pads[2]-(kh-1)*d[0]-1)/s[0] + 1
	ow := (wd+pads[1]+pads[3]-(kw-1)*d[1]-1)/s[1] + 1
	y := tensor.New(n, m, oh, ow)
	mg := m / group
	for ni := 0; ni < n; ni++ {
		for mi := 0; mi < m; mi++ {
			g := mi / mg
			for r := 0; r < oh; r++ {
				for q := 0; q < ow; q++ {
					acc := 0.0
					if b != nil {
						acc = float64(b.F[mi])
					}
					for ci := 0; ci < cg; ci++ {
						ch := g*cg + ci
						for i := 0; i < kh; i++ {
							for j := 0; j < kw; j++ {
								ih, iw := r*s[0]-pads[0]+i*d[0], q*s[1]-pads[1]+j*d[1]
								if ih < 0 || ih >= h || iw < 0 || iw >= wd {
									continue
								}
								acc += float64(x.F[((ni*c+ch)*h+ih)*wd+iw]) * float64(w.F[((mi*cg+ci)*kh+i)*kw+j])
							}
						}
					}
					y.F[((ni*m+mi)*oh+r)*ow+q] = float32(acc)
				}
			}
		}
	}
	_ = c
	return y
}

// as4D views a 3-D (1-D conv) tensor as [N, C, 1, L].
func as4D(t *tensor.Tensor) *tensor.Tensor {
	if t == nil || t.Rank() != 3 {
		return t
	}
	r, _ := t.Reshape(t.Shape[0], t.Shape[1], 1, t.Shape[2])
	return r
}

type convCase struct {
	name   string
	attrs  []*graph.Attr
	x, w   []int
	bias   bool
	s, d   [2]int
	pads   [4]int // expected resolved pads: top, left, bottom, right
	group  int
	gcheck bool
}

var convCases = []convCase{
	{name: "basic", x: []int{1, 1, 4, 4}, w: []int{1, 1, 3, 3}, s: [2]int{1, 1}, d: [2]int{1, 1}, group: 1, gcheck: true},
	{name: "bias pads", attrs: []*graph.Attr{aInts("pads", 1, 1, 1, 1)}, x: []int{2, 3, 5, 5}, w: []int{4, 3, 3, 3}, bias: true,
		s: [2]int{1, 1}, d: [2]int{1, 1}, pads: [4]int{1, 1, 1, 1}, group: 1, gcheck: true},
	{name: "groups stride asymmetric pads", attrs: []*graph.Attr{aInt("group", 2), aInts("strides", 2, 2), aInts("pads", 0, 1, 2, 1)},
		x: []int{1, 4, 6, 7}, w: []int{6, 2, 3, 2}, bias: true, s: [2]int{2, 2}, d: [2]int{1, 1}, pads: [4]int{0, 1, 2, 1}, group: 2, gcheck: true},
	{name: "dilation", attrs: []*graph.Attr{aInts("dilations", 2, 2), aInts("strides", 2, 1), aInts("pads", 1, 0, 0, 2)},
		x: []int{2, 2, 7, 6}, w: []int{3, 2, 2, 3}, s: [2]int{2, 1}, d: [2]int{2, 2}, pads: [4]int{1, 0, 0, 2}, group: 1, gcheck: true},
	{name: "depthwise", attrs: []*graph.Attr{aInt("group", 3), aInts("pads", 1, 1, 1, 1), aInts("kernel_shape", 3, 3)},
		x: []int{1, 3, 5, 5}, w: []int{3, 1, 3, 3}, bias: true, s: [2]int{1, 1}, d: [2]int{1, 1}, pads: [4]int{1, 1, 1, 1}, group: 3, gcheck: true},
	{name: "same upper", attrs: []*graph.Attr{aStr("auto_pad", "SAME_UPPER"), aInts("strides", 2, 2)},
		x: []int{1, 2, 6, 5}, w: []int{2, 2, 3, 3}, s: [2]int{2, 2}, d: [2]int{1, 1}, pads: [4]int{0, 1, 1, 1}, group: 1, gcheck: true},
	{name: "same lower", attrs: []*graph.Attr{aStr("auto_pad", "SAME_LOWER")},
		x: []int{1, 2, 6, 6}, w: []int{2, 2, 2, 2}, s: [2]int{1, 1}, d: [2]int{1, 1}, pads: [4]int{1, 1, 0, 0}, group: 1},
	{name: "valid", attrs: []*graph.Attr{aStr("auto_pad", "VALID"), aInts("strides", 2, 2), aInts("pads", 5, 5, 5, 5)},
		x: []int{1, 1, 7, 6}, w: []int{1, 1, 3, 3}, s: [2]int{2, 2}, d: [2]int{1, 1}, group: 1},
	{name: "1x1 stride 2", attrs: []*graph.Attr{aInts("strides", 2, 2)},
		x: []int{2, 4, 7, 7}, w: []int{8, 4, 1, 1}, bias: true, s: [2]int{2, 2}, d: [2]int{1, 1}, group: 1},
	{name: "big pads", attrs: []*graph.Attr{aInts("pads", 3, 2, 3, 4)},
		x: []int{1, 2, 3, 3}, w: []int{2, 2, 2, 3}, s: [2]int{1, 1}, d: [2]int{1, 1}, pads: [4]int{3, 2, 3, 4}, group: 1, gcheck: true},
	{name: "1-D", attrs: []*graph.Attr{aInts("strides", 2), aInts("pads", 1, 2), aInts("dilations", 2)},
		x: []int{2, 3, 9}, w: []int{4, 3, 3}, bias: true, s: [2]int{1, 2}, d: [2]int{1, 2}, pads: [4]int{0, 1, 0, 2}, group: 1, gcheck: true},
	{name: "1-D groups kernel_shape", attrs: []*graph.Attr{aInt("group", 3), aInts("kernel_shape", 2), aStr("auto_pad", "SAME_UPPER")},
		x: []int{1, 3, 5}, w: []int{6, 1, 2}, s: [2]int{1, 1}, d: [2]int{1, 1}, pads: [4]int{0, 0, 0, 1}, group: 3, gcheck: true},
}

func TestConvForward(t *testing.T) {
	for i, c := range convCases {
		t.Run(c.name, func(t *testing.T) {
			k := build(t, mk("Conv", 3, 1, c.attrs...), 13)
			x, w := optest.Rand(uint64(i), c.x...), optest.Rand(uint64(i+100), c.w...)
			in := []*tensor.Tensor{x, w}
			var b *tensor.Tensor
			if c.bias {
				b = optest.Rand(uint64(i+200), c.w[0])
				in = append(in, b)
			}
			y := forward(t, k, in...)[0]
			want := refConv(as4D(x), as4D(w), b, c.s, c.d, c.pads, c.group)
			got := as4D(y)
			if !tensor.SameShape(got.Shape, want.Shape) || len(y.Shape) != len(c.x) {
				t.Fatalf("shape %v, want %v", y.Shape, want.Shape)
			}
			if d := tensor.MaxAbsDiff(got.F, want.F); d > 1e-4 {
				t.Fatalf("max diff %g", d)
			}
		})
	}
}

func TestConvGrad(t *testing.T) {
	for i, c := range convCases {
		if !c.gcheck {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			k := build(t, mk("Conv", 3, 1, c.attrs...), 13)
			in := []*tensor.Tensor{optest.Rand(uint64(i), c.x...), optest.Rand(uint64(i+100), c.w...)}
			wrt := []int{0, 1}
			if c.bias {
				in = append(in, optest.Rand(uint64(i+200), c.w[0]))
				wrt = append(wrt, 2)
			}
			optest.GradCheck(t, k, in, wrt, optest.Options{Seed: uint64(i)})
		})
	}
}

func TestConvBackwardNeed(t *testing.T) {
	k := build(t, mk("Conv", 3, 1, aInts("pads", 1, 1, 1, 1)), 13).(interface {
		Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error)
	})
	in := []*tensor.Tensor{optest.Rand(1, 1, 2, 4, 4), optest.Rand(2, 3, 2, 3, 3), optest.Rand(3, 3)}
	out := forward(t, k.(interface {
		Forward([]*tensor.Tensor) ([]*tensor.Tensor, error)
	}), in...)
	g, err := k.Backward(in, out, []*tensor.Tensor{optest.Rand(4, out[0].Shape...)}, []bool{true, false, false})
	if err != nil || g[0] == nil || g[1] != nil || g[2] != nil {
		t.Fatalf("need X only: %v %v", g, err)
	}
	g, err = k.Backward(in, out, []*tensor.Tensor{nil}, []bool{true, true, true})
	if err != nil || g[0] == nil || g[1] == nil || g[2] == nil {
		t.Fatalf("nil gout: %v %v", g, err)
	}
	for _, t2 := range g {
		for _, v := range t2.F {
			if v != 0 {
				t.Fatalf("nil gout gives nonzero gradient")
			}
		}
	}
}

func TestConvErrors(t *testing.T) {
	k := build(t, mk("Conv", 3, 1), 13)
	x, w := optest.Rand(1, 1, 3, 5, 5), optest.Rand(2, 4, 3, 3, 3)
	wantErr(t, k, "channels", optest.Rand(1, 1, 2, 5, 5), w)
	wantErr(t, k, "rank", optest.Rand(1, 3, 5, 5), w)
	wantErr(t, k, "bias", x, w, optest.Rand(3, 3))
	wantErr(t, k, "does not fit", optest.Rand(1, 1, 3, 2, 2), w)
	wantErr(t, k, "missing", x)
	wantErr(t, k, "int64", &tensor.Tensor{DType: tensor.Int64, Shape: []int{1}, I: []int64{1}}, w)
	wantErr(t, k, "only 1-D and 2-D", optest.Rand(1, 1, 3, 2, 2, 2), optest.Rand(1, 1, 3, 1, 1, 1))
	wantErr(t, build(t, mk("Conv", 2, 1, aInt("group", 2)), 13), "groups", optest.Rand(1, 1, 4, 5, 5), optest.Rand(1, 3, 2, 3, 3))
	wantErr(t, build(t, mk("Conv", 2, 1, aInts("kernel_shape", 2, 2)), 13), "kernel_shape", x, w)
	wantErr(t, build(t, mk("Conv", 2, 1, aInts("kernel_shape", 3)), 13), "kernel_shape", x, w)
	for _, n := range []*graph.Node{
		mk("Conv", 2, 1, aStr("auto_pad", "SAME")),
		mk("Conv", 2, 1, aInt("group", 0)),
		mk("Conv", 2, 1, aInts("kernel_shape", 3, 3), aInts("strides", 1, 1, 1)),
		mk("Conv", 2, 1, aInts("strides", 1, 1, 1)),
		mk("Conv", 2, 1, aInts("kernel_shape", 3, 3), aInts("pads", -1, 0, 0, 0)),
	} {
		if _, err := newConv(n, 13); err == nil {
			t.Errorf("factory accepted %v", n.Attrs)
		}
	}
}
