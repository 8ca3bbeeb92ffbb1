package kernels

import "runtime"

// Winograd convolution F(4×4, 3×3) (Lavin & Gray, "Fast Algorithms for
// Convolutional Neural Networks", 2016) for 3×3 convolutions with stride
// and dilation 1 and one group.
//
// The output is cut into 4×4 tiles; tile (i, j) of an image reads the
// 6×6 window d of the zero-padded input at rows 4i.., columns 4j.., and
//
//	y_tile = Aᵀ [ Σ_c (G g_c Gᵀ) ⊙ (Bᵀ d_c Bᵀᵀ) ] A
//
// where g_c is the 3×3 kernel of input channel c. For each of the 36
// transform positions ξ this is a GEMM, Y[ξ] (M × tiles) = U[ξ] (M × C,
// transformed weights) · V[ξ] (C × tiles, transformed input), which runs
// on the blocked GEMM's micro-kernel. The transforms are small matrix
// products too (6×6 by 6×16 tiles at a time), also run on the
// micro-kernel, so that they are vectorized.
//
// The matrices come from the interpolation points 0, 1, -1, 1/2, -2 and
// ∞ (Toom-Cook). Measured in float32 on resnet18's 3×3 layers against a
// float64 reference, they give a relative L2 error of 1.2e-6 to 2.6e-6
// and a largest error of 2e-6 to 5e-6 of max|y|; the common points
// 0, ±1, ±2 give 1.8e-6 to 3.1e-6 and up to 1.2e-5 (direct float32
// convolution: 4e-7 to 1.1e-6).

const (
	winoOut  = 4  // output tile side
	winoIn   = 6  // input tile side
	winoPos  = 36 // transform positions
	winoTile = nr // tiles transformed at a time (one micro-kernel panel)
)

// winoTables holds the transform matrices in float32, each laid out as
// the A operand of the micro-kernel (mr = 6 rows, row-major).
type winoTables struct {
	bt [winoIn * winoIn]float32 // Bᵀ (6×6)
	at [winoIn * winoIn]float32 // Aᵀ (4×6) padded with two zero rows
	gg [winoPos * 9]float32     // G⊗G: row ξ = 6a+b, column 3·kh+kw
}

// winoPoints are the finite interpolation points (the sixth is ∞).
var winoPoints = [winoIn - 1]float64{0, 1, -1, 0.5, -2}

// wino holds the tables built from winoPoints; it is never modified.
var wino = newWinoTables(winoPoints)

// winoMatrices returns, in float64, Aᵀ (4×6), G (6×3) and Bᵀ (6×6) for
// F(4, 3) with the given finite points and ∞: Aᵀ[i][j] = p_j^i, G[j][k] =
// p_j^k / Π_{l≠j}(p_j − p_l), and row j of Bᵀ the coefficients (lowest
// first) of Π_{l≠j}(x − p_l); the ∞ column of Aᵀ and row of G pick the
// leading coefficients, and the ∞ row of Bᵀ is Π_l(x − p_l).
func winoMatrices(pts [winoIn - 1]float64) (at [winoOut][winoIn]float64, g [winoIn][3]float64, bt [winoIn][winoIn]float64) {
	const n = winoIn
	for i := 0; i < winoOut; i++ {
		for j := 0; j < n-1; j++ {
			v := 1.0
			for k := 0; k < i; k++ {
				v *= pts[j]
			}
			at[i][j] = v
		}
	}
	at[winoOut-1][n-1] = 1
	for j := 0; j < n-1; j++ {
		den := 1.0
		for l := 0; l < n-1; l++ {
			if l != j {
				den *= pts[j] - pts[l]
			}
		}
		v := 1 / den
		for k := 0; k < 3; k++ {
			g[j][k] = v
			v *= pts[j]
		}
	}
	g[n-1][2] = 1
	for j := 0; j < n; j++ {
		// Multiply out Π_{l≠j}(x − p_l); c[i] is the coefficient of x^i.
		var c [winoIn]float64
		c[0] = 1
		deg := 0
		for l := 0; l < n-1; l++ {
			if l == j {
				continue
			}
			for i := deg + 1; i > 0; i-- {
				c[i] = c[i-1] - pts[l]*c[i]
			}
			c[0] *= -pts[l]
			deg++
		}
		bt[j] = c
	}
	return at, g, bt
}

func newWinoTables(pts [winoIn - 1]float64) *winoTables {
	at, g, bt := winoMatrices(pts)
	t := new(winoTables)
	for i := 0; i < winoIn; i++ {
		for j := 0; j < winoIn; j++ {
			t.bt[i*winoIn+j] = float32(bt[i][j])
			if i < winoOut {
				t.at[i*winoIn+j] = float32(at[i][j])
			}
		}
	}
	for a := 0; a < winoIn; a++ {
		for b := 0; b < winoIn; b++ {
			for kh := 0; kh < 3; kh++ {
				for kw := 0; kw < 3; kw++ {
					t.gg[(a*winoIn+b)*9+kh*3+kw] = float32(g[a][kh] * g[b][kw])
				}
			}
		}
	}
	return t
}

// winogradOK reports whether conv2DWinograd can compute the convolution
// p (normalized): 3×3, stride 1, dilation 1, one group.
func winogradOK(p ConvParams) bool {
	return p.KH == 3 && p.KW == 3 && p.StrideH == 1 && p.StrideW == 1 &&
		p.DilH == 1 && p.DilW == 1 && p.Group == 1
}

// winoPlan is how conv2DWinograd splits its work: tiles in blocks of
// block tiles (a multiple of winoTile), output channels in chunks of
// mchunk rows per GEMM pass.
type winoPlan struct {
	th, tw, tiles int // tile rows and columns per image, tiles in all
	block, blocks int
	mchunk        int
	hp, wp        int // padded input plane
	workers       int
}

func planWinograd(p ConvParams, workers int) winoPlan {
	OH, OW := p.OutH(), p.OutW()
	var pl winoPlan
	pl.th, pl.tw = (OH+winoOut-1)/winoOut, (OW+winoOut-1)/winoOut
	pl.tiles = p.N * pl.th * pl.tw
	pl.hp, pl.wp = winoOut*pl.th+2, winoOut*pl.tw+2
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
		if p.N*p.M*p.C*9*OH*OW < convGrain {
			workers = 1
		}
	}
	pl.workers = workers
	// The transformed input of a block, 36·C·block floats, should stay
	// in L2.
	pl.block = max(winoTile, (96<<10)/(winoPos*p.C)/winoTile*winoTile)
	pl.block = min(pl.block, roundUp(pl.tiles, winoTile))
	pl.blocks = (pl.tiles + pl.block - 1) / pl.block
	pl.mchunk = p.M
	return pl
}

// conv2DWinograd is Conv2D for 3×3 convolutions with stride 1, dilation
// 1 and one group (see winogradOK), by Winograd's F(4×4, 3×3), on up to
// workers goroutines (0: automatic). p must be normalized.
func conv2DWinograd(p ConvParams, x, w, bias, y []float32, workers int) {
	if p.N == 0 {
		return
	}
	pl := planWinograd(p, workers)
	C, M := p.C, p.M
	// Transformed weights: U[ξ] (M×C) = Σ_k gg[ξ][k] w[m][c][k], one GEMM
	// of gg (36×9) by the weights seen as a (M·C)×9 matrix, transposed.
	uBuf := getBuf(winoPos * M * C)
	u := *uBuf
	gemm(pl.workers, false, true, winoPos, M*C, 9, 1, wino.gg[:], 9, w, 9, 0, u, M*C)
	// Zero-padded input, planes of hp×wp: tile (i, j) reads rows 4i..4i+5
	// and columns 4j..4j+5 of its plane.
	plane := pl.hp * pl.wp
	xpBuf := getBuf(p.N * C * plane)
	xp := *xpBuf
	parallelRange(p.N*C, max(1, copyGrain/plane), pl.workers, func(lo, hi int) {
		for ic := lo; ic < hi; ic++ {
			fillPhase(p, x[ic*p.H*p.W:(ic+1)*p.H*p.W], xp[ic*plane:(ic+1)*plane], 0, 0, pl.hp, pl.wp)
		}
	})
	parallelTasks(pl.blocks, pl.workers, func(_ int, next func() int) {
		var vBuf, mBuf *[]float32
		for b := next(); b >= 0; b = next() {
			if vBuf == nil {
				vBuf = getBuf(winoPos * C * pl.block)
				mBuf = getBuf(winoPos * pl.mchunk * pl.block)
			}
			t0, t1 := b*pl.block, min((b+1)*pl.block, pl.tiles)
			winoBlock(p, &pl, xp, u, bias, y, t0, t1, *vBuf, *mBuf)
		}
		putBuf(vBuf)
		putBuf(mBuf)
	})
	putBuf(xpBuf)
	putBuf(uBuf)
}

// winoBlock computes the output tiles [t0, t1) (numbered image by image,
// row by row): it transforms their input into v, runs the 36 GEMMs into
// m and transforms the results into y.
func winoBlock(p ConvParams, pl *winoPlan, xp, u, bias, y []float32, t0, t1 int, v, m []float32) {
	C, M := p.C, p.M
	nt := t1 - t0
	ntp := roundUp(nt, winoTile)
	vs := C * ntp // one position's packed C×ntp matrix
	for t := t0; t < t1; t += winoTile {
		winoInput(p, pl, xp, v, vs, ntp, t, min(t+winoTile, t1), t-t0)
	}
	for m0 := 0; m0 < M; m0 += pl.mchunk {
		m1 := min(m0+pl.mchunk, M)
		ms := (m1 - m0) * ntp
		for xi := 0; xi < winoPos; xi++ {
			op := gemmOp{m: m1 - m0, n: nt, k: C, alpha: 1,
				a: u[(xi*M+m0)*C : (xi*M+m1)*C], lda: C,
				c: m[xi*ms : (xi+1)*ms], ldc: ntp}
			op.run(0, m1-m0, 0, nt, v[xi*vs:(xi+1)*vs], nil)
		}
		for t := t0; t < t1; t += winoTile {
			winoOutput(p, pl, m, ms, ntp, bias, y, m0, m1, t, min(t+winoTile, t1), t-t0)
		}
	}
}

// winoInput transforms the input of tiles [t0, t1) (at most winoTile)
// for all channels: V[ξ][c][col+j] for tile t0+j, in the packed layout of
// packBAll for a C×ntp matrix, the matrices of successive ξ vs apart.
func winoInput(p ConvParams, pl *winoPlan, xp, v []float32, vs, ntp, t0, t1, col int) {
	C := p.C
	plane := pl.hp * pl.wp
	// Offsets of the tiles' windows within their image's first plane.
	var base [winoTile]int
	n := t1 - t0
	for j := 0; j < n; j++ {
		t := t0 + j
		img, r := t/(pl.th*pl.tw), t%(pl.th*pl.tw)
		ti, tj := r/pl.tw, r%pl.tw
		base[j] = img*C*plane + winoOut*ti*pl.wp + winoOut*tj
	}
	var d, z [winoPos * winoTile]float32
	for c := 0; c < C; c++ {
		// d[(6r+s)·16 + j] is element (r, s) of tile j's window.
		for j := 0; j < n; j++ {
			src := xp[base[j]+c*plane:]
			for r := 0; r < winoIn; r++ {
				row := src[r*pl.wp : r*pl.wp+winoIn]
				for s, val := range row {
					d[(r*winoIn+s)*winoTile+j] = val
				}
			}
		}
		if n < winoTile {
			for k := 0; k < winoPos; k++ {
				clear(d[k*winoTile+n : (k+1)*winoTile])
			}
		}
		// z[(6a+s)·16 + j] = Σ_r Bᵀ[a][r] d[(6r+s)·16 + j], column by
		// column s.
		for s := 0; s < winoIn; s++ {
			microKernel(winoIn, wino.bt[:], winoIn, 1, d[s*winoTile:], winoIn*winoTile, z[s*winoTile:], winoIn*winoTile, 1, 0, nil)
		}
		// V[6a+b] = Σ_s Bᵀ[b][s] z[6a+s], row by row a, into the packed
		// layout: depth block pc, panel col, row c-pc.
		pc := c / kcBlock * kcBlock
		kcur := min(kcBlock, C-pc)
		off := pc*ntp + col*kcur + (c-pc)*winoTile
		for a := 0; a < winoIn; a++ {
			microKernel(winoIn, wino.bt[:], winoIn, 1, z[a*winoIn*winoTile:], winoTile, v[a*winoIn*vs+off:], vs, 1, 0, nil)
		}
	}
}

// winoOutput transforms the GEMM results m of output channels [m0, m1)
// (position ξ's (m1-m0)×ntp matrix at m[ξ·ms:]) for tiles [t0, t1) (at
// most winoTile, from column col on) into y, adding the bias.
func winoOutput(p ConvParams, pl *winoPlan, m []float32, ms, ntp int, bias, y []float32, m0, m1, t0, t1, col int) {
	OH, OW := p.OutH(), p.OutW()
	P := OH * OW
	n := t1 - t0
	var base [winoTile]int
	var hv, wv [winoTile]int // valid rows and columns of each tile
	for j := 0; j < n; j++ {
		t := t0 + j
		img, r := t/(pl.th*pl.tw), t%(pl.th*pl.tw)
		ti, tj := r/pl.tw, r%pl.tw
		base[j] = img*p.M*P + winoOut*ti*OW + winoOut*tj
		hv[j], wv[j] = min(winoOut, OH-winoOut*ti), min(winoOut, OW-winoOut*tj)
	}
	var z [winoPos * winoTile]float32
	var out [winoOut * winoIn * winoTile]float32
	var bv [mr]float32
	for o := m0; o < m1; o++ {
		// z[(6u+b)·16 + j] = Σ_a Aᵀ[u][a] m[6a+b][o][j] (rows u = 4, 5 are
		// zero), column by column b.
		src := m[(o-m0)*ntp+col:]
		for b := 0; b < winoIn; b++ {
			microKernel(winoIn, wino.at[:], winoIn, 1, src[b*ms:], winoIn*ms, z[b*winoTile:], winoIn*winoTile, 1, 0, nil)
		}
		// out[(6u+v)·16 + j] = Σ_b Aᵀ[v][b] z[6u+b] + bias.
		var pb []float32
		if bias != nil {
			for i := range bv {
				bv[i] = bias[o]
			}
			pb = bv[:]
		}
		for uu := 0; uu < winoOut; uu++ {
			microKernel(winoIn, wino.at[:], winoIn, 1, z[uu*winoIn*winoTile:], winoTile, out[uu*winoIn*winoTile:], winoTile, 1, 0, pb)
		}
		yo := y[o*P:]
		for j := 0; j < n; j++ {
			dst := yo[base[j]:]
			for uu := 0; uu < hv[j]; uu++ {
				row := dst[uu*OW : uu*OW+wv[j]]
				for vv := range row {
					row[vv] = out[(uu*winoIn+vv)*winoTile+j]
				}
			}
		}
	}
}

// winoInputGrad is conv2DInputGrad by conv2DWinograd, for p (normalized)
// with winogradOK(p) and padding at most 2 on each side: the input
// gradient is then the convolution of gy with the weights flipped and
// their channel axes swapped (see ConvParams.transposed).
func winoInputGrad(p ConvParams, w, gy, gx []float32, workers int) {
	q, _ := p.transposed()
	wtBuf := getBuf(p.M * p.C * 9)
	wt := *wtBuf
	for c := 0; c < p.C; c++ {
		for m := 0; m < p.M; m++ {
			src := w[(m*p.C+c)*9:][:9]
			dst := wt[(c*p.M+m)*9:][:9]
			for i, v := range src {
				dst[8-i] = v
			}
		}
	}
	conv2DWinograd(q, gy, wt, nil, gx, workers)
	putBuf(wtBuf)
}
