package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// naiveConv is a direct convolution in float64: y = conv(x, w) + bias.
func naiveConv(p ConvParams, x, w, bias []float32) []float32 {
	p = p.norm()
	OH, OW := p.OutH(), p.OutW()
	cg, mg := p.C/p.Group, p.M/p.Group
	y := make([]float32, p.N*p.M*OH*OW)
	for n := 0; n < p.N; n++ {
		for m := 0; m < p.M; m++ {
			g := m / mg
			for oh := 0; oh < OH; oh++ {
				for ow := 0; ow < OW; ow++ {
					var s float64
					if bias != nil {
						s = float64(bias[m])
					}
					for c := 0; c < cg; c++ {
						for kh := 0; kh < p.KH; kh++ {
							for kw := 0; kw < p.KW; kw++ {
								ih := oh*p.StrideH - p.PadT + kh*p.DilH
								iw := ow*p.StrideW - p.PadL + kw*p.DilW
								if ih < 0 || ih >= p.H || iw < 0 || iw >= p.W {
									continue
								}
								xv := x[((n*p.C+g*cg+c)*p.H+ih)*p.W+iw]
								wv := w[((m*cg+c)*p.KH+kh)*p.KW+kw]
								s += float64(xv) * float64(wv)
							}
						}
					}
					y[((n*p.M+m)*OH+oh)*OW+ow] = float32(s)
				}
			}
		}
	}
	return y
}

func dot64(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

func closeTo(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: len %d, want %d", what, len(got), len(want))
	}
	for i := range got {
		if d := math.Abs(float64(got[i] - want[i])); !(d <= tol*(1+math.Abs(float64(want[i])))) {
			t.Fatalf("%s: [%d] = %g, want %g", what, i, got[i], want[i])
		}
	}
}

func nanSlice(n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(math.NaN())
	}
	return x
}

var convCases = []struct {
	name string
	p    ConvParams
}{
	{"3x3 pad1", ConvParams{N: 2, C: 3, H: 7, W: 6, M: 4, KH: 3, KW: 3, PadT: 1, PadL: 1, PadB: 1, PadR: 1}},
	{"1x1 pointwise", ConvParams{N: 3, C: 5, H: 4, W: 5, M: 6, KH: 1, KW: 1}},
	{"1x1 stride2", ConvParams{N: 2, C: 4, H: 7, W: 7, M: 3, KH: 1, KW: 1, StrideH: 2, StrideW: 2}},
	{"7x7 s2 p3", ConvParams{N: 1, C: 3, H: 20, W: 18, M: 5, KH: 7, KW: 7, StrideH: 2, StrideW: 2, PadT: 3, PadL: 3, PadB: 3, PadR: 3}},
	{"groups", ConvParams{N: 2, C: 6, H: 5, W: 5, M: 9, KH: 3, KW: 2, PadT: 1, PadL: 0, PadB: 1, PadR: 1, Group: 3}},
	{"depthwise", ConvParams{N: 2, C: 4, H: 6, W: 6, M: 4, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadT: 1, PadL: 1, PadB: 1, PadR: 1, Group: 4}},
	{"dilation", ConvParams{N: 1, C: 2, H: 9, W: 8, M: 3, KH: 3, KW: 3, DilH: 2, DilW: 3, PadT: 2, PadL: 1, PadB: 0, PadR: 2}},
	{"asym pads stride", ConvParams{N: 2, C: 3, H: 8, W: 9, M: 2, KH: 2, KW: 4, StrideH: 3, StrideW: 2, PadT: 0, PadL: 3, PadB: 2, PadR: 1}},
	{"1-D", ConvParams{N: 3, C: 2, H: 1, W: 13, M: 4, KH: 1, KW: 5, StrideW: 2, PadL: 2, PadR: 1, DilW: 1}},
	{"pad bigger than kernel", ConvParams{N: 1, C: 2, H: 3, W: 3, M: 2, KH: 2, KW: 2, PadT: 3, PadL: 3, PadB: 3, PadR: 3}},
	{"big batch", ConvParams{N: 5, C: 8, H: 12, W: 12, M: 16, KH: 3, KW: 3, PadT: 1, PadL: 1, PadB: 1, PadR: 1}},
	{"big pointwise batch", ConvParams{N: 4, C: 32, H: 10, W: 10, M: 24, KH: 1, KW: 1}},
	{"channel bands", ConvParams{N: 1, C: 64, H: 4, W: 4, M: 20, KH: 3, KW: 3, PadT: 1, PadL: 1, PadB: 1, PadR: 1}},
	{"deep chunks", ConvParams{N: 1, C: 40, H: 30, W: 30, M: 7, KH: 3, KW: 3, PadT: 1, PadL: 1, PadB: 1, PadR: 1}},
	{"narrow rows many channels", ConvParams{N: 2, C: 8, H: 5, W: 5, M: 256, KH: 3, KW: 3, PadT: 1, PadL: 1, PadB: 1, PadR: 1}},
	{"dilated strided", ConvParams{N: 2, C: 3, H: 17, W: 16, M: 4, KH: 3, KW: 3, StrideH: 3, StrideW: 2, DilH: 2, DilW: 3, PadT: 2, PadL: 1, PadB: 1, PadR: 2}},
	{"narrow strided many channels", ConvParams{N: 1, C: 4, H: 9, W: 9, M: 256, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadT: 1, PadL: 1, PadB: 1, PadR: 1}},
	{"wide 1x1 stride2", ConvParams{N: 2, C: 5, H: 6, W: 40, M: 7, KH: 1, KW: 1, StrideH: 2, StrideW: 2}},
	{"input grad as conv", ConvParams{N: 3, C: 5, H: 6, W: 16, M: 4, KH: 3, KW: 3, PadT: 1, PadL: 2, PadB: 0, PadR: 1, DilW: 1, Group: 1}},
	{"input grad as grouped conv", ConvParams{N: 2, C: 4, H: 5, W: 8, M: 6, KH: 2, KW: 3, DilH: 2, PadT: 1, PadL: 1, PadR: 2, Group: 2}},
	{"stride>kernel", ConvParams{N: 2, C: 2, H: 10, W: 11, M: 3, KH: 2, KW: 2, StrideH: 3, StrideW: 4}},
}

func sizes(p ConvParams) (nx, nw, ny int) {
	p = p.norm()
	return p.N * p.C * p.H * p.W, p.M * (p.C / p.Group) * p.KH * p.KW, p.N * p.M * p.OutH() * p.OutW()
}

func TestConv2D(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, tc := range convCases {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p
			nx, nw, ny := sizes(p)
			x, w, bias := rnd(r, nx), rnd(r, nw), rnd(r, p.M)
			for _, b := range [][]float32{nil, bias} {
				want := naiveConv(p, x, w, b)
				y := nanSlice(ny)
				Conv2D(p, x, w, b, y)
				closeTo(t, fmt.Sprintf("bias=%v", b != nil), y, want, 1e-4)
				// Forced goroutine counts, to cover the splits.
				for _, workers := range []int{1, 3} {
					y := nanSlice(ny)
					conv2D(p, x, w, b, y, workers)
					closeTo(t, fmt.Sprintf("workers=%d bias=%v", workers, b != nil), y, want, 1e-4)
				}
			}
		})
	}
}

// TestConv2DGrads checks the input gradient against the adjoint identity
// <conv(x,w), gy> = <x, InputGrad(w, gy)> and the weight gradient against
// <conv(x,w), gy> = <w, WeightGrad(x, gy)>, and both against central
// finite differences of L(x, w) = <conv(x,w), gy> at a few coordinates.
func TestConv2DGrads(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, tc := range convCases {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p
			nx, nw, ny := sizes(p)
			x, w, gy := rnd(r, nx), rnd(r, nw), rnd(r, ny)
			y := make([]float32, ny)
			Conv2D(p, x, w, nil, y)
			lhs := dot64(y, gy)
			gx, gw := nanSlice(nx), nanSlice(nw)
			Conv2DInputGrad(p, w, gy, gx)
			Conv2DWeightGrad(p, x, gy, gw)
			// The same with forced goroutine counts.
			for _, workers := range []int{1, 3} {
				gx2, gw2 := nanSlice(nx), nanSlice(nw)
				conv2DInputGrad(p, w, gy, gx2, workers)
				conv2DWeightGrad(p, x, gy, gw2, workers)
				closeTo(t, fmt.Sprintf("gx workers=%d", workers), gx2, gx, 1e-4)
				closeTo(t, fmt.Sprintf("gw workers=%d", workers), gw2, gw, 1e-4)
			}
			tol := 1e-4 * (1 + math.Abs(lhs)) * math.Sqrt(float64(ny))
			if rx := dot64(x, gx); math.Abs(rx-lhs) > tol {
				t.Errorf("<x, InputGrad(gy)> = %g, want <conv(x,w), gy> = %g", rx, lhs)
			}
			if rw := dot64(w, gw); math.Abs(rw-lhs) > tol {
				t.Errorf("<w, WeightGrad(gy)> = %g, want <conv(x,w), gy> = %g", rw, lhs)
			}
			// L is bilinear, so central differences are exact up to
			// rounding; compute them in float64 via the naive conv.
			loss := func(x, w []float32) float64 { return dot64(naiveConv(p, x, w, nil), gy) }
			const h = 0.5
			for _, i := range []int{0, nx / 3, nx - 1} {
				xp, xm := append([]float32(nil), x...), append([]float32(nil), x...)
				xp[i] += h
				xm[i] -= h
				fd := (loss(xp, w) - loss(xm, w)) / (2 * h)
				if math.Abs(fd-float64(gx[i])) > 1e-3*(1+math.Abs(fd)) {
					t.Errorf("gx[%d] = %g, finite difference %g", i, gx[i], fd)
				}
			}
			for _, i := range []int{0, nw / 2, nw - 1} {
				wp, wm := append([]float32(nil), w...), append([]float32(nil), w...)
				wp[i] += h
				wm[i] -= h
				fd := (loss(x, wp) - loss(x, wm)) / (2 * h)
				if math.Abs(fd-float64(gw[i])) > 1e-3*(1+math.Abs(fd)) {
					t.Errorf("gw[%d] = %g, finite difference %g", i, gw[i], fd)
				}
			}
		})
	}
}

func TestConvOutSize(t *testing.T) {
	p := ConvParams{N: 1, C: 3, H: 224, W: 224, M: 64, KH: 7, KW: 7, StrideH: 2, StrideW: 2, PadT: 3, PadL: 3, PadB: 3, PadR: 3}
	if p.OutH() != 112 || p.OutW() != 112 {
		t.Fatalf("conv1 output %dx%d, want 112x112", p.OutH(), p.OutW())
	}
	// Zero strides and dilations read as 1.
	q := ConvParams{N: 1, C: 1, H: 5, W: 4, M: 1, KH: 3, KW: 1}
	if q.OutH() != 3 || q.OutW() != 4 {
		t.Fatalf("got %dx%d, want 3x4", q.OutH(), q.OutW())
	}
}

func TestConvEmptyBatch(t *testing.T) {
	p := ConvParams{N: 0, C: 2, H: 4, W: 4, M: 3, KH: 3, KW: 3, StrideH: 2, StrideW: 2}
	gw := nanSlice(3 * 2 * 9)
	Conv2D(p, nil, make([]float32, 54), nil, nil)
	Conv2DInputGrad(p, make([]float32, 54), nil, nil)
	Conv2DWeightGrad(p, nil, nil, gw)
	for i, v := range gw {
		if v != 0 {
			t.Fatalf("gw[%d] = %g with an empty batch, want 0", i, v)
		}
	}
}

func TestConvPanics(t *testing.T) {
	p := ConvParams{N: 1, C: 3, H: 4, W: 4, M: 2, KH: 3, KW: 3, Group: 2}
	defer func() {
		if recover() == nil {
			t.Fatal("no panic for C not divisible by group")
		}
	}()
	Conv2D(p, make([]float32, 48), make([]float32, 100), nil, make([]float32, 100))
}

func BenchmarkConv2D(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, bc := range []struct {
		name string
		p    ConvParams
	}{
		{"conv1_7x7s2_N1", ConvParams{N: 1, C: 3, H: 224, W: 224, M: 64, KH: 7, KW: 7, StrideH: 2, StrideW: 2, PadT: 3, PadL: 3, PadB: 3, PadR: 3}},
		{"conv1_7x7s2_N10", ConvParams{N: 10, C: 3, H: 224, W: 224, M: 64, KH: 7, KW: 7, StrideH: 2, StrideW: 2, PadT: 3, PadL: 3, PadB: 3, PadR: 3}},
		{"3x3_64_56_N1", ConvParams{N: 1, C: 64, H: 56, W: 56, M: 64, KH: 3, KW: 3, PadT: 1, PadL: 1, PadB: 1, PadR: 1}},
		{"3x3_64_56_N10", ConvParams{N: 10, C: 64, H: 56, W: 56, M: 64, KH: 3, KW: 3, PadT: 1, PadL: 1, PadB: 1, PadR: 1}},
		{"1x1_256_14_N1", ConvParams{N: 1, C: 256, H: 14, W: 14, M: 256, KH: 1, KW: 1}},
		{"3x3_256_14_N1", ConvParams{N: 1, C: 256, H: 14, W: 14, M: 256, KH: 3, KW: 3, PadT: 1, PadL: 1, PadB: 1, PadR: 1}},
		{"3x3_128_28_N1", ConvParams{N: 1, C: 128, H: 28, W: 28, M: 128, KH: 3, KW: 3, PadT: 1, PadL: 1, PadB: 1, PadR: 1}},
		{"3x3_512_7_N1", ConvParams{N: 1, C: 512, H: 7, W: 7, M: 512, KH: 3, KW: 3, PadT: 1, PadL: 1, PadB: 1, PadR: 1}},
	} {
		p := bc.p
		nx, nw, ny := sizes(p)
		x, w, bias, y := rnd(r, nx), rnd(r, nw), rnd(r, p.M), make([]float32, ny)
		flops := 2 * float64(ny) * float64(nw/p.M)
		b.Run(bc.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				Conv2D(p, x, w, bias, y)
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		b.Run(bc.name+"_InputGrad", func(b *testing.B) {
			gx := make([]float32, nx)
			for i := 0; i < b.N; i++ {
				Conv2DInputGrad(p, w, y, gx)
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		b.Run(bc.name+"_WeightGrad", func(b *testing.B) {
			gw := make([]float32, nw)
			for i := 0; i < b.N; i++ {
				Conv2DWeightGrad(p, x, y, gw)
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
