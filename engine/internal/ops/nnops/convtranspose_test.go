package nnops

import (
	"testing"

	"github.com/loupe-ml/loupe/engine/internal/op/optest"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// refConvTranspose scatters every input element through the kernel:
// x [N,C,H,W], w [C,M/g,KH,KW], output [N,M,OH,OW] with pads top, left.
func refConvTranspose(x, w, b *tensor.Tensor, s, d [2]int, pt, pl, oh, ow, group int) *tensor.Tensor {
	n, c, h, wd := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	mg, kh, kw := w.Shape[1], w.Shape[2], w.Shape[3]
	m := mg * group
	cg := c / group
	acc := make([]float64, n*m*oh*ow)
	for ni := 0; ni < n; ni++ {
		for ci := 0; ci < c; ci++ {
			g := ci / cg
			for r := 0; r < h; r++ {
				for q := 0; q < wd; q++ {
					v := float64(x.F[((ni*c+ci)*h+r)*wd+q])
					for mo := 0; mo < mg; mo++ {
						mi := g*mg + mo
						for i := 0; i < kh; i++ {
							for j := 0; j < kw; j++ {
								y, z := r*s[0]-pt+i*d[0], q*s[1]-pl+j*d[1]
								if y < 0 || y >= oh || z < 0 || z >= ow {
									continue
								}
								acc[((ni*m+mi)*oh+y)*ow+z] += v * float64(w.F[((ci*mg+mo)*kh+i)*kw+j])
							}
						}
					}
				}
			}
		}
	}
	out := tensor.New(n, m, oh, ow)
	for i := range acc {
		out.F[i] = float32(acc[i])
		if b != nil {
			out.F[i] += b.F[(i/(oh*ow))%m]
		}
	}
	return out
}

func TestConvTransposeTorch(t *testing.T) {
	// torch.nn.functional.conv_transpose2d(x, w, b, stride=2, padding=1,
	// output_padding=1, groups=2)
	x := seq(1, 2, 2, 2)
	w := seq(2, 1, 3, 3)
	for i := range w.F {
		w.F[i] = (w.F[i] - 9) / 4
	}
	b := ft([]int{2}, 0.5, -1)
	k := build(t, mk("ConvTranspose", 3, 1, aInts("strides", 2, 2), aInts("pads", 1, 1, 1, 1), aInts("output_padding", 1, 1), aInt("group", 2)), 13)
	y := forward(t, k, x, w, b)[0]
	near(t, "Y", y, []int{1, 2, 4, 4}, []float32{-0.5, -2.75, -1.5, -1.0, -5.0, -13.0, -7.0, -5.5, -2.5, -6.75, -3.5, -2.5, -0.25, -1.5, -0.5, 0.5,
		5.25, 12.5, 6.5, 8.0, 12.5, 28.0, 15.0, 18.5, 7.75, 17.5, 9.0, 11.0, 13.0, 28.75, 15.0, 17.0}, 1e-5)
	// torch conv_transpose1d([1, 2], ones(3), stride=2)
	y = forward(t, build(t, mk("ConvTranspose", 2, 1, aInts("strides", 2)), 13), ft([]int{1, 1, 2}, 1, 2), ft([]int{1, 1, 3}, 1, 1, 1))[0]
	near(t, "1-D", y, []int{1, 1, 5}, []float32{1, 1, 3, 2, 2}, 0)
}

func TestConvTranspose(t *testing.T) {
	tests := []struct {
		name           string
		attrs          []*graph.Attr
		x, w           []int
		bias           bool
		s, d           [2]int
		pt, pl, oh, ow int
		group          int
	}{
		{"plain", nil, []int{1, 2, 3, 3}, []int{2, 3, 2, 2}, true, [2]int{1, 1}, [2]int{1, 1}, 0, 0, 4, 4, 1},
		{"stride pads output_padding", []*graph.Attr{aInts("strides", 2, 3), aInts("pads", 1, 0, 0, 2), aInts("output_padding", 1, 2)},
			[]int{2, 2, 3, 2}, []int{2, 2, 3, 3}, false, [2]int{2, 3}, [2]int{1, 1}, 1, 0, 7, 6, 1},
		{"dilation group", []*graph.Attr{aInts("dilations", 2, 1), aInt("group", 2), aInts("pads", 1, 1, 1, 1)},
			[]int{1, 4, 3, 4}, []int{4, 1, 2, 3}, true, [2]int{1, 1}, [2]int{2, 1}, 1, 1, 3, 4, 2},
		{"output_shape", []*graph.Attr{aInts("strides", 2, 2), aInts("output_shape", 6, 7)},
			[]int{1, 1, 3, 3}, []int{1, 2, 3, 3}, true, [2]int{2, 2}, [2]int{1, 1}, 1, 0, 6, 7, 1},
		{"same upper", []*graph.Attr{aInts("strides", 2, 2), aStr("auto_pad", "SAME_UPPER")},
			[]int{1, 1, 3, 2}, []int{1, 1, 3, 3}, false, [2]int{2, 2}, [2]int{1, 1}, 0, 0, 6, 4, 1},
	}
	for i, c := range tests {
		t.Run(c.name, func(t *testing.T) {
			k := build(t, mk("ConvTranspose", 3, 1, c.attrs...), 13)
			x, w := optest.Rand(uint64(i), c.x...), optest.Rand(uint64(i+10), c.w...)
			in := []*tensor.Tensor{x, w}
			wrt := []int{0, 1}
			var b *tensor.Tensor
			if c.bias {
				b = optest.Rand(uint64(i+20), c.w[1]*c.group)
				in = append(in, b)
				wrt = append(wrt, 2)
			}
			y := forward(t, k, in...)[0]
			want := refConvTranspose(x, w, b, c.s, c.d, c.pt, c.pl, c.oh, c.ow, c.group)
			if !tensor.SameShape(y.Shape, want.Shape) {
				t.Fatalf("shape %v, want %v", y.Shape, want.Shape)
			}
			if d := tensor.MaxAbsDiff(y.F, want.F); d > 1e-4 {
				t.Fatalf("max diff %g", d)
			}
			optest.GradCheck(t, k, in, wrt, optest.Options{Seed: uint64(i)})
		})
	}
}

func TestConvTransposeErrors(t *testing.T) {
	k := build(t, mk("ConvTranspose", 2, 1), 13)
	wantErr(t, k, "rows", seq(1, 2, 3, 3), seq(3, 1, 2, 2))
	wantErr(t, k, "rank", seq(1, 2, 3), seq(2, 1, 2, 2))
	wantErr(t, build(t, mk("ConvTranspose", 2, 1, aInts("output_padding", 1, 1)), 13), "output_padding", seq(1, 1, 3, 3), seq(1, 1, 2, 2))
	wantErr(t, build(t, mk("ConvTranspose", 2, 1, aInt("group", 2)), 13), "groups", seq(1, 3, 3, 3), seq(3, 1, 2, 2))
	wantErr(t, k, "bias", seq(1, 1, 3, 3), seq(1, 1, 2, 2), seq(2))
}
