package nnops

import (
	"testing"

	"github.com/loupe-ml/loupe/engine/op/optest"
	"github.com/loupe-ml/loupe/tensor"
)

// TestConvLowerings checks the GEMM lowering against the direct loops for
// all three primitives.
func TestConvLowerings(t *testing.T) {
	ps := []convParams{
		{N: 2, C: 4, H: 7, W: 6, M: 8, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadT: 1, PadL: 1, PadB: 1, PadR: 1, DilH: 1, DilW: 1, Group: 1},
		{N: 1, C: 8, H: 9, W: 8, M: 8, KH: 3, KW: 2, StrideH: 2, StrideW: 3, PadT: 0, PadL: 2, PadB: 1, PadR: 0, DilH: 2, DilW: 1, Group: 2},
		{N: 3, C: 6, H: 5, W: 5, M: 5, KH: 1, KW: 1, StrideH: 1, StrideW: 1, DilH: 1, DilW: 1, Group: 1},
		{N: 2, C: 6, H: 5, W: 7, M: 12, KH: 1, KW: 1, StrideH: 2, StrideW: 2, DilH: 1, DilW: 1, Group: 1},
		{N: 1, C: 3, H: 1, W: 11, M: 4, KH: 1, KW: 5, StrideH: 1, StrideW: 2, PadL: 3, PadR: 1, DilH: 1, DilW: 2, Group: 1},
		{N: 1, C: 2, H: 3, W: 3, M: 4, KH: 2, KW: 2, StrideH: 1, StrideW: 1, PadT: 3, PadL: 3, PadB: 3, PadR: 3, DilH: 1, DilW: 1, Group: 1},
	}
	for i, p := range ps {
		cg := p.C / p.Group
		x := optest.Rand(uint64(i), p.N*p.C*p.H*p.W).F
		w := optest.Rand(uint64(i+1), p.M*cg*p.KH*p.KW).F
		b := optest.Rand(uint64(i+2), p.M).F
		ny := p.N * p.M * p.OutH() * p.OutW()
		gy := optest.Rand(uint64(i+3), ny).F
		y1, y2 := make([]float32, ny), make([]float32, ny)
		conv2DDirect(p, x, w, b, y1)
		conv2DGemm(p, x, w, b, y2)
		if d := tensor.MaxAbsDiff(y1, y2); d > 1e-4 {
			t.Errorf("case %d: forward differs by %g", i, d)
		}
		g1, g2 := make([]float32, len(x)), make([]float32, len(x))
		for j := range g2 {
			g2[j] = 7 // must be overwritten
		}
		conv2DInputGradDirect(p, w, gy, g1)
		conv2DInputGradGemm(p, w, gy, g2)
		if d := tensor.MaxAbsDiff(g1, g2); d > 1e-4 {
			t.Errorf("case %d: input gradient differs by %g", i, d)
		}
		w1, w2 := make([]float32, len(w)), make([]float32, len(w))
		for j := range w2 {
			w2[j] = 7
		}
		conv2DWeightGradDirect(p, x, gy, w1)
		conv2DWeightGradGemm(p, x, gy, w2)
		if d := tensor.MaxAbsDiff(w1, w2); d > 1e-4 {
			t.Errorf("case %d: weight gradient differs by %g", i, d)
		}
	}
}
