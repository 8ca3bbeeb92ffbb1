package nnops

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/loupe-ml/loupe/engine/internal/op/optest"
	"github.com/loupe-ml/loupe/tensor"
)

// refConvGrads returns the gradients of a direct float64 convolution with
// respect to its input and weight, for output gradient gy.
func refConvGrads(p convParams, x, w, gy []float32) (gx, gw []float32) {
	oh, ow := p.OutH(), p.OutW()
	cg, mg := p.C/p.Group, p.M/p.Group
	ax, aw := make([]float64, len(x)), make([]float64, len(w))
	for n := 0; n < p.N; n++ {
		for m := 0; m < p.M; m++ {
			g := m / mg
			for r := 0; r < oh; r++ {
				for q := 0; q < ow; q++ {
					gv := float64(gy[((n*p.M+m)*oh+r)*ow+q])
					for ci := 0; ci < cg; ci++ {
						c := g*cg + ci
						for i := 0; i < p.KH; i++ {
							for j := 0; j < p.KW; j++ {
								ih, iw := r*p.StrideH-p.PadT+i*p.DilH, q*p.StrideW-p.PadL+j*p.DilW
								if ih < 0 || ih >= p.H || iw < 0 || iw >= p.W {
									continue
								}
								xi := ((n*p.C+c)*p.H+ih)*p.W + iw
								wi := ((m*cg+ci)*p.KH+i)*p.KW + j
								ax[xi] += gv * float64(w[wi])
								aw[wi] += gv * float64(x[xi])
							}
						}
					}
				}
			}
		}
	}
	gx, gw = make([]float32, len(x)), make([]float32, len(w))
	for i, v := range ax {
		gx[i] = float32(v)
	}
	for i, v := range aw {
		gw[i] = float32(v)
	}
	return gx, gw
}

// TestConvPaths checks the GEMM and direct convolution loops, forward and
// both gradients, against float64 references over random geometries
// (batch chunking, pointwise kernels, groups, strides, dilations, pads).
func TestConvPaths(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	fixed := []convParams{
		{N: 3, C: 8, H: 5, W: 6, M: 8, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadT: 1, PadL: 1, PadB: 1, PadR: 1, DilH: 1, DilW: 1, Group: 1},
		{N: 4, C: 6, H: 4, W: 4, M: 8, KH: 1, KW: 1, StrideH: 1, StrideW: 1, DilH: 1, DilW: 1, Group: 2},
		{N: 1, C: 6, H: 4, W: 5, M: 8, KH: 1, KW: 1, StrideH: 1, StrideW: 1, DilH: 1, DilW: 1, Group: 1},
		{N: 2, C: 4, H: 7, W: 7, M: 4, KH: 1, KW: 1, StrideH: 2, StrideW: 2, DilH: 1, DilW: 1, Group: 1},
		{N: 2, C: 4, H: 33, W: 40, M: 8, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadT: 1, PadL: 1, PadB: 1, PadR: 1, DilH: 1, DilW: 1, Group: 1},
	}
	for i := 0; i < 60; i++ {
		g := 1 + rng.IntN(3)
		p := convParams{N: 1 + rng.IntN(3), C: g * (1 + rng.IntN(3)), H: 1 + rng.IntN(7), W: 1 + rng.IntN(7), M: g * (1 + rng.IntN(5)),
			KH: 1 + rng.IntN(3), KW: 1 + rng.IntN(3), StrideH: 1 + rng.IntN(3), StrideW: 1 + rng.IntN(3),
			PadT: rng.IntN(3), PadL: rng.IntN(3), PadB: rng.IntN(3), PadR: rng.IntN(3), DilH: 1 + rng.IntN(2), DilW: 1 + rng.IntN(2), Group: g}
		if p.H+p.PadT+p.PadB < (p.KH-1)*p.DilH+1 || p.W+p.PadL+p.PadR < (p.KW-1)*p.DilW+1 {
			continue
		}
		fixed = append(fixed, p)
	}
	for i, p := range fixed {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			oh, ow := p.OutH(), p.OutW()
			x := optest.Rand(uint64(i), p.N*p.C*p.H*p.W).F
			w := optest.Rand(uint64(i+1000), p.M*(p.C/p.Group)*p.KH*p.KW).F
			b := optest.Rand(uint64(i+2000), p.M).F
			gy := optest.Rand(uint64(i+3000), p.N*p.M*oh*ow).F
			xt, _ := tensor.FromFloat32(x, p.N, p.C, p.H, p.W)
			wt, _ := tensor.FromFloat32(w, p.M, p.C/p.Group, p.KH, p.KW)
			bt, _ := tensor.FromFloat32(b, p.M)
			want := refConv(xt, wt, bt, [2]int{p.StrideH, p.StrideW}, [2]int{p.DilH, p.DilW}, [4]int{p.PadT, p.PadL, p.PadB, p.PadR}, p.Group).F
			wgx, wgw := refConvGrads(p, x, w, gy)
			for _, path := range []struct {
				name         string
				fwd          func(convParams, []float32, []float32, []float32, []float32)
				gradX, gradW func(convParams, []float32, []float32, []float32)
			}{
				{"kernels", conv2D, conv2DInputGrad, conv2DWeightGrad},
				{"direct", conv2DDirect, conv2DInputGradDirect, conv2DWeightGradDirect},
			} {
				y := make([]float32, len(want))
				for j := range y {
					y[j] = 99 // outputs must be overwritten
				}
				path.fwd(p, x, w, b, y)
				if d := tensor.MaxAbsDiff(y, want); d > 1e-4 {
					t.Errorf("%s %+v: forward differs by %g", path.name, p, d)
				}
				gx, gw := make([]float32, len(x)), make([]float32, len(w))
				for j := range gx {
					gx[j] = 99
				}
				for j := range gw {
					gw[j] = 99
				}
				path.gradX(p, w, gy, gx)
				path.gradW(p, x, gy, gw)
				if d := tensor.MaxAbsDiff(gx, wgx); d > 1e-4 {
					t.Errorf("%s %+v: input gradient differs by %g", path.name, p, d)
				}
				if d := tensor.MaxAbsDiff(gw, wgw); d > 1e-3 {
					t.Errorf("%s %+v: weight gradient differs by %g", path.name, p, d)
				}
			}
		})
	}
}
