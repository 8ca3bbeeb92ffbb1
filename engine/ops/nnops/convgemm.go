package nnops

import (
	"sync"

	"github.com/loupe-ml/loupe/engine/kernels"
)

// This file lowers convolutions to GEMMs (kernels.Sgemm) over im2col
// patch matrices: per chunk of nb images and per group,
// Y[Mg, nb*P] = W[Mg, K] × cols[K, nb*P] with K = C/g*KH*KW and
// P = OH*OW. Small feature maps are batched into one GEMM so that its
// rows stay long. Groups with few output channels (depthwise convolutions)
// keep the direct loops.

// useGemm reports whether the GEMM lowering pays off for p.
func (p convParams) useGemm() bool {
	return p.M/p.Group >= 4 && p.C/p.Group*p.KH*p.KW >= 4
}

// pointwise reports whether cols would equal the input itself (1×1
// kernel, stride 1, no padding).
func (p convParams) pointwise() bool {
	return p.KH == 1 && p.KW == 1 && p.StrideH == 1 && p.StrideW == 1 &&
		p.PadT == 0 && p.PadL == 0 && p.PadB == 0 && p.PadR == 0
}

// chunk returns how many images one GEMM covers.
func (p convParams) chunk() int {
	P := p.OutH() * p.OutW()
	if P == 0 {
		return 1
	}
	nb := min(max((512+P-1)/P, 1), p.N)
	k := p.C / p.Group * p.KH * p.KW
	for nb > 1 && k*nb*P > 1<<23 {
		nb--
	}
	return max(nb, 1)
}

// bufPool recycles the patch and staging buffers of the GEMM lowering.
var bufPool = sync.Pool{New: func() any { return new([]float32) }}

func getBuf(n int) *[]float32 {
	b := bufPool.Get().(*[]float32)
	if cap(*b) < n {
		*b = make([]float32, n)
	}
	*b = (*b)[:n]
	return b
}

// im2col fills columns [off, off+OH*OW) of cols (rows cg*KH*KW, row
// stride ld) from the cg channel planes xg of one image.
func (p convParams) im2col(xg, cols []float32, ld, off, cg int, ohLo, ohHi, owLo, owHi []int) {
	oh, ow := p.OutH(), p.OutW()
	P, kk, inPlane := oh*ow, p.KH*p.KW, p.H*p.W
	rows := cg * kk
	parallel(rows, rows*P, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			ci, k := r/kk, r%kk
			kh, kw := k/p.KW, k%p.KW
			xp := xg[ci*inPlane : (ci+1)*inPlane]
			dst := cols[r*ld+off : r*ld+off+P]
			l, h := owLo[kw], owHi[kw]
			shift := kw*p.DilW - p.PadL
			for o := 0; o < oh; o++ {
				d := dst[o*ow : (o+1)*ow]
				if o < ohLo[kh] || o >= ohHi[kh] || l >= h {
					clear(d)
					continue
				}
				ih := o*p.StrideH - p.PadT + kh*p.DilH
				row := xp[ih*p.W : (ih+1)*p.W]
				clear(d[:l])
				clear(d[h:])
				if p.StrideW == 1 {
					copy(d[l:h], row[l+shift:h+shift])
				} else {
					j := l*p.StrideW + shift
					for i := l; i < h; i++ {
						d[i] = row[j]
						j += p.StrideW
					}
				}
			}
		}
	})
}

// col2im adds columns [off, off+OH*OW) of the patch gradients gcols (rows
// cg*KH*KW, row stride ld) into the cg channel planes gxg of one image.
func (p convParams) col2im(gcols, gxg []float32, ld, off, cg int, ohLo, ohHi, owLo, owHi []int) {
	oh, ow := p.OutH(), p.OutW()
	P, kk, inPlane := oh*ow, p.KH*p.KW, p.H*p.W
	parallel(cg, cg*kk*P, func(lo, hi int) {
		for ci := lo; ci < hi; ci++ {
			gp := gxg[ci*inPlane : (ci+1)*inPlane]
			for k := 0; k < kk; k++ {
				kh, kw := k/p.KW, k%p.KW
				r := ci*kk + k
				src := gcols[r*ld+off : r*ld+off+P]
				l, h := owLo[kw], owHi[kw]
				if l >= h {
					continue
				}
				shift := kw*p.DilW - p.PadL
				for o := ohLo[kh]; o < ohHi[kh]; o++ {
					ih := o*p.StrideH - p.PadT + kh*p.DilH
					row := gp[ih*p.W : (ih+1)*p.W]
					s := src[o*ow+l : o*ow+h]
					if p.StrideW == 1 {
						d := row[l+shift : h+shift]
						for i, v := range s {
							d[i] += v
						}
					} else {
						j := l*p.StrideW + shift
						for _, v := range s {
							row[j] += v
							j += p.StrideW
						}
					}
				}
			}
		}
	})
}

// stage copies the planes of group g of images [n0, n0+nb) of t
// ([N, ch, P]) into the matrix s ([chg, nb*P]) or, with back, the reverse.
func stage(t, s []float32, ch, chg, g, n0, nb, P int, back bool) {
	ld := nb * P
	for j := 0; j < nb; j++ {
		for c := 0; c < chg; c++ {
			tp := t[((n0+j)*ch+g*chg+c)*P : ((n0+j)*ch+g*chg+c+1)*P]
			sp := s[c*ld+j*P : c*ld+(j+1)*P]
			if back {
				copy(tp, sp)
			} else {
				copy(sp, tp)
			}
		}
	}
}

// conv2DGemm is conv2DDirect lowered to GEMMs.
func conv2DGemm(p convParams, x, w, bias, y []float32) {
	if !p.useGemm() {
		conv2DDirect(p, x, w, bias, y)
		return
	}
	P := p.OutH() * p.OutW()
	cg, mg, inPlane := p.C/p.Group, p.M/p.Group, p.H*p.W
	K := cg * p.KH * p.KW
	ohLo, ohHi, owLo, owHi := p.tapRanges()
	nb := p.chunk()
	pw := p.pointwise() && nb == 1
	var cols, tmp []float32
	if !pw {
		b := getBuf(K * nb * P)
		defer bufPool.Put(b)
		cols = *b
	}
	if nb > 1 {
		b := getBuf(mg * nb * P)
		defer bufPool.Put(b)
		tmp = *b
	}
	for n0 := 0; n0 < p.N; n0 += nb {
		cnt := min(nb, p.N-n0)
		ld := cnt * P
		for g := 0; g < p.Group; g++ {
			wg := w[g*mg*K : (g+1)*mg*K]
			if pw {
				xg := x[(n0*p.C+g*cg)*inPlane : (n0*p.C+(g+1)*cg)*inPlane]
				kernels.Sgemm(false, false, mg, P, K, 1, wg, K, xg, P, 0, y[(n0*p.M+g*mg)*P:(n0*p.M+(g+1)*mg)*P], P)
				continue
			}
			for j := 0; j < cnt; j++ {
				n := n0 + j
				p.im2col(x[(n*p.C+g*cg)*inPlane:(n*p.C+(g+1)*cg)*inPlane], cols, ld, j*P, cg, ohLo, ohHi, owLo, owHi)
			}
			if nb == 1 {
				kernels.Sgemm(false, false, mg, P, K, 1, wg, K, cols, P, 0, y[(n0*p.M+g*mg)*P:(n0*p.M+(g+1)*mg)*P], P)
				continue
			}
			kernels.Sgemm(false, false, mg, ld, K, 1, wg, K, cols, ld, 0, tmp, ld)
			stage(y, tmp, p.M, mg, g, n0, cnt, P, true)
		}
	}
	if bias != nil {
		parallel(p.N*p.M, p.N*p.M*P, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				bv := bias[i%p.M]
				yp := y[i*P : (i+1)*P]
				for j := range yp {
					yp[j] += bv
				}
			}
		})
	}
}

// conv2DInputGradGemm is conv2DInputGradDirect lowered to GEMMs.
func conv2DInputGradGemm(p convParams, w, gy, gx []float32) {
	if !p.useGemm() {
		conv2DInputGradDirect(p, w, gy, gx)
		return
	}
	P := p.OutH() * p.OutW()
	cg, mg, inPlane := p.C/p.Group, p.M/p.Group, p.H*p.W
	K := cg * p.KH * p.KW
	ohLo, ohHi, owLo, owHi := p.tapRanges()
	nb := p.chunk()
	pw := p.pointwise() && nb == 1
	var cols, tmp []float32
	if !pw {
		b := getBuf(K * nb * P)
		defer bufPool.Put(b)
		cols = *b
	}
	if nb > 1 {
		b := getBuf(mg * nb * P)
		defer bufPool.Put(b)
		tmp = *b
	}
	for n0 := 0; n0 < p.N; n0 += nb {
		cnt := min(nb, p.N-n0)
		ld := cnt * P
		for g := 0; g < p.Group; g++ {
			wg := w[g*mg*K : (g+1)*mg*K]
			gyg := gy[(n0*p.M+g*mg)*P : (n0*p.M+(g+1)*mg)*P]
			if pw {
				kernels.Sgemm(true, false, K, P, mg, 1, wg, K, gyg, P, 0, gx[(n0*p.C+g*cg)*inPlane:(n0*p.C+(g+1)*cg)*inPlane], P)
				continue
			}
			if nb > 1 {
				stage(gy, tmp, p.M, mg, g, n0, cnt, P, false)
				gyg = tmp
			}
			kernels.Sgemm(true, false, K, ld, mg, 1, wg, K, gyg, ld, 0, cols, ld)
			for j := 0; j < cnt; j++ {
				n := n0 + j
				gxg := gx[(n*p.C+g*cg)*inPlane : (n*p.C+(g+1)*cg)*inPlane]
				clear(gxg)
				p.col2im(cols, gxg, ld, j*P, cg, ohLo, ohHi, owLo, owHi)
			}
		}
	}
}

// conv2DWeightGradGemm is conv2DWeightGradDirect lowered to GEMMs.
func conv2DWeightGradGemm(p convParams, x, gy, gw []float32) {
	if !p.useGemm() {
		conv2DWeightGradDirect(p, x, gy, gw)
		return
	}
	if p.N == 0 {
		clear(gw)
		return
	}
	P := p.OutH() * p.OutW()
	cg, mg, inPlane := p.C/p.Group, p.M/p.Group, p.H*p.W
	K := cg * p.KH * p.KW
	ohLo, ohHi, owLo, owHi := p.tapRanges()
	nb := p.chunk()
	pw := p.pointwise() && nb == 1
	var cols, tmp []float32
	if !pw {
		b := getBuf(K * nb * P)
		defer bufPool.Put(b)
		cols = *b
	}
	if nb > 1 {
		b := getBuf(mg * nb * P)
		defer bufPool.Put(b)
		tmp = *b
	}
	for n0 := 0; n0 < p.N; n0 += nb {
		cnt := min(nb, p.N-n0)
		ld := cnt * P
		beta := float32(1)
		if n0 == 0 {
			beta = 0
		}
		for g := 0; g < p.Group; g++ {
			gyg := gy[(n0*p.M+g*mg)*P : (n0*p.M+(g+1)*mg)*P]
			if nb > 1 {
				stage(gy, tmp, p.M, mg, g, n0, cnt, P, false)
				gyg = tmp
			}
			b := x[(n0*p.C+g*cg)*inPlane : (n0*p.C+(g+1)*cg)*inPlane]
			if !pw {
				for j := 0; j < cnt; j++ {
					n := n0 + j
					p.im2col(x[(n*p.C+g*cg)*inPlane:(n*p.C+(g+1)*cg)*inPlane], cols, ld, j*P, cg, ohLo, ohHi, owLo, owHi)
				}
				b = cols
			}
			kernels.Sgemm(false, true, mg, K, ld, 1, gyg, ld, b, ld, beta, gw[g*mg*K:(g+1)*mg*K], K)
		}
	}
}
