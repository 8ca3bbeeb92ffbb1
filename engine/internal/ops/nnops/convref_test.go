package nnops

import "github.com/loupe-ml/loupe/internal/par"

// Direct convolution loops, the references TestConvPaths checks
// engine/internal/kernels' convolutions against (with refConv).

// tapRanges returns, for every kernel row kh, the output rows whose input row
// is inside the image, and the same for kernel columns.
func (p convParams) tapRanges() (ohLo, ohHi, owLo, owHi []int) {
	oh, ow := p.OutH(), p.OutW()
	r := make([]int, 2*p.KH+2*p.KW)
	ohLo, ohHi, owLo, owHi = r[:p.KH], r[p.KH:2*p.KH], r[2*p.KH:2*p.KH+p.KW], r[2*p.KH+p.KW:]
	for k := 0; k < p.KH; k++ {
		ohLo[k], ohHi[k] = validRange(p.H, oh, p.StrideH, p.PadT, k*p.DilH)
	}
	for k := 0; k < p.KW; k++ {
		owLo[k], owHi[k] = validRange(p.W, ow, p.StrideW, p.PadL, k*p.DilW)
	}
	return
}

// conv2DDirect computes y [N,M,OH,OW] = conv(x [N,C,H,W], w [M,C/g,KH,KW]) + bias.
func conv2DDirect(p convParams, x, w, bias, y []float32) {
	oh, ow := p.OutH(), p.OutW()
	plane, inPlane, kk := oh*ow, p.H*p.W, p.KH*p.KW
	cg, mg := p.C/p.Group, p.M/p.Group
	ohLo, ohHi, owLo, owHi := p.tapRanges()
	par.For(p.N*p.M, par.Grain(plane*cg*kk), func(lo, hi int) {
		for nm := lo; nm < hi; nm++ {
			n, m := nm/p.M, nm%p.M
			g := m / mg
			out := y[nm*plane : (nm+1)*plane]
			var b float32
			if bias != nil {
				b = bias[m]
			}
			for i := range out {
				out[i] = b
			}
			for ci := 0; ci < cg; ci++ {
				xp := x[(n*p.C+g*cg+ci)*inPlane:][:inPlane]
				wp := w[(m*cg+ci)*kk:][:kk]
				for kh := 0; kh < p.KH; kh++ {
					for kw := 0; kw < p.KW; kw++ {
						wv := wp[kh*p.KW+kw]
						l, h := owLo[kw], owHi[kw]
						if l >= h {
							continue
						}
						off := kw*p.DilW - p.PadL
						for r := ohLo[kh]; r < ohHi[kh]; r++ {
							ih := r*p.StrideH - p.PadT + kh*p.DilH
							row := xp[ih*p.W : (ih+1)*p.W]
							o := out[r*ow+l : r*ow+h]
							if p.StrideW == 1 {
								src := row[l+off : h+off]
								for i := range o {
									o[i] += wv * src[i]
								}
							} else {
								j := l*p.StrideW + off
								for i := range o {
									o[i] += wv * row[j]
									j += p.StrideW
								}
							}
						}
					}
				}
			}
		}
	})
}

// conv2DInputGradDirect computes gx [N,C,H,W], the gradient of conv2D with
// respect to its input, from gy [N,M,OH,OW].
func conv2DInputGradDirect(p convParams, w, gy, gx []float32) {
	oh, ow := p.OutH(), p.OutW()
	plane, inPlane, kk := oh*ow, p.H*p.W, p.KH*p.KW
	cg, mg := p.C/p.Group, p.M/p.Group
	ohLo, ohHi, owLo, owHi := p.tapRanges()
	par.For(p.N*p.C, par.Grain(mg*plane*kk), func(lo, hi int) {
		for nc := lo; nc < hi; nc++ {
			n, c := nc/p.C, nc%p.C
			g, ci := c/cg, c%cg
			gp := gx[nc*inPlane : (nc+1)*inPlane]
			clear(gp)
			for mi := 0; mi < mg; mi++ {
				m := g*mg + mi
				yp := gy[(n*p.M+m)*plane:][:plane]
				wp := w[(m*cg+ci)*kk:][:kk]
				for kh := 0; kh < p.KH; kh++ {
					for kw := 0; kw < p.KW; kw++ {
						wv := wp[kh*p.KW+kw]
						l, h := owLo[kw], owHi[kw]
						if l >= h {
							continue
						}
						off := kw*p.DilW - p.PadL
						for r := ohLo[kh]; r < ohHi[kh]; r++ {
							ih := r*p.StrideH - p.PadT + kh*p.DilH
							row := gp[ih*p.W : (ih+1)*p.W]
							src := yp[r*ow+l : r*ow+h]
							if p.StrideW == 1 {
								dst := row[l+off : h+off]
								for i := range dst {
									dst[i] += wv * src[i]
								}
							} else {
								j := l*p.StrideW + off
								for _, v := range src {
									row[j] += wv * v
									j += p.StrideW
								}
							}
						}
					}
				}
			}
		}
	})
}

// conv2DWeightGradDirect computes gw [M,C/g,KH,KW], the gradient of conv2D
// with respect to its weight, from x and gy.
func conv2DWeightGradDirect(p convParams, x, gy, gw []float32) {
	oh, ow := p.OutH(), p.OutW()
	plane, inPlane, kk := oh*ow, p.H*p.W, p.KH*p.KW
	cg, mg := p.C/p.Group, p.M/p.Group
	ohLo, ohHi, owLo, owHi := p.tapRanges()
	par.For(p.M*cg, par.Grain(p.N*plane*kk), func(lo, hi int) {
		for mc := lo; mc < hi; mc++ {
			m, ci := mc/cg, mc%cg
			c := (m/mg)*cg + ci
			for kh := 0; kh < p.KH; kh++ {
				for kw := 0; kw < p.KW; kw++ {
					var acc float64
					l, h := owLo[kw], owHi[kw]
					off := kw*p.DilW - p.PadL
					for n := 0; n < p.N && l < h; n++ {
						xp := x[(n*p.C+c)*inPlane:][:inPlane]
						yp := gy[(n*p.M+m)*plane:][:plane]
						for r := ohLo[kh]; r < ohHi[kh]; r++ {
							ih := r*p.StrideH - p.PadT + kh*p.DilH
							row := xp[ih*p.W : (ih+1)*p.W]
							src := yp[r*ow+l : r*ow+h]
							var s float32
							if p.StrideW == 1 {
								xs := row[l+off : h+off]
								for i, v := range src {
									s += v * xs[i]
								}
							} else {
								j := l*p.StrideW + off
								for _, v := range src {
									s += v * row[j]
									j += p.StrideW
								}
							}
							acc += float64(s)
						}
					}
					gw[mc*kk+kh*p.KW+kw] = float32(acc)
				}
			}
		}
	})
}
