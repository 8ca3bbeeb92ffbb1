package kernels

import (
	"runtime"
	"sync"

	"github.com/loupe-ml/loupe/internal/par"
)

// Winograd convolution F(4×4, 3×3) (Lavin & Gray, "Fast Algorithms for
// Convolutional Neural Networks", 2016) for 3×3 convolutions with stride
// and dilation 1 and one group, and so for their input gradients, which
// are such convolutions too.
//
// The output is cut into 4×4 tiles; tile (i, j) of an image reads the
// 6×6 window d_c of the zero-padded input channel c at rows 4i..,
// columns 4j.., and
//
//	y_tile = Aᵀ [ Σ_c (G g_c Gᵀ) ⊙ (Bᵀ d_c B) ] A
//
// where g_c is the 3×3 kernel of input channel c. For each of the 36
// transform positions ξ this is a GEMM, Y[ξ] (M × tiles) = U[ξ] (M × C,
// transformed weights) · V[ξ] (C × tiles, transformed input), run on the
// blocked GEMM (gemmOp) with the tiles of all images side by side: 36/144
// of the direct convolution's multiplications for whole tiles.
//
// The transforms are vectorized across 8 tiles (or kernels): in AVX2
// assembly on amd64 (winograd_amd64.s, written out by a script for these
// points), else as small matrix products on the micro-kernel. For the
// input transform the padded input is first split into 4 column phases
// (column 4j+q of the padded input is column j of phase q), so that the
// windows of consecutive tiles of a tile row are consecutive in memory.
//
// The matrices come from the interpolation points 0, 1, -1, 1/2, -2 and
// ∞ (Toom-Cook). Measured in float32 on resnet18's 3×3 layers with
// N(0,1) inputs and He-initialized weights, against a float64 reference,
// they give a relative L2 error of 1.1e-6 to 2e-6 and a largest error of
// 2e-6 to 4.5e-6 of max|y|, forward and input gradient; the common points
// 0, ±1, ±2 gave 1.8e-6 to 3.1e-6 and up to 1.2e-5, F(2×2, 3×3) 2.7e-7 to
// 6.3e-7, and the direct float32 convolution 1.6e-7 to 1.1e-6
// (TestWinogradAccuracy). Changing the points means generating the
// assembly again: the tests then fail until it is.

const (
	winoOut  = 4  // output tile side
	winoIn   = 6  // input tile side
	winoPos  = 36 // transform positions
	winoTile = nr // tiles transformed at a time by the portable transforms (one micro-kernel panel)
)

// winoTables holds the transform matrices in float32, each laid out as
// the A operand of the micro-kernel (mr = 6 rows, row-major).
type winoTables struct {
	bt [winoIn * winoIn]float32 // Bᵀ (6×6)
	at [winoIn * winoIn]float32 // Aᵀ (4×6) padded with two zero rows
	g  [winoIn * 3]float32      // G (6×3)
	gf [winoIn * 3]float32      // G with its columns reversed
	// G and gf with each entry repeated 8 times, for winoWeightsAVX2.
	gv, gfv [winoIn * 3 * 8]float32
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
		for k := 0; k < 3; k++ {
			t.g[a*3+k] = float32(g[a][k])
			t.gf[a*3+2-k] = float32(g[a][k])
			for l := 0; l < 8; l++ {
				t.gv[(a*3+k)*8+l] = float32(g[a][k])
				t.gfv[(a*3+2-k)*8+l] = float32(g[a][k])
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

// useWinograd reports whether Conv2D should run the convolution p
// (normalized) by conv2DWinograd: a 3×3 stride-1 convolution with enough
// tiles to pay for transforming the weights on every call, and enough
// channels to pay for transforming the input and output. Measured against
// conv2DDirect on 2 cores (see TestWinogradSpeed): with 64 to 512
// channels and 16 tiles or more (resnet18's 3×3 layers but the 7×7 ones
// at batch 1), 1.5 to 2.8 times faster; at 4 tiles (7×7, batch 1) 2 to 3
// times slower; with 32 channels 0.95 to 1.8 times as fast, with 16 or 8
// 0.75 to 1.05.
func useWinograd(p ConvParams) bool {
	if !winogradOK(p) {
		return false
	}
	tiles := p.N * ((p.OutH() + winoOut - 1) / winoOut) * ((p.OutW() + winoOut - 1) / winoOut)
	return tiles >= 16 && p.C >= 32 && p.M >= 32
}

// winoPlan is how conv2DWinograd splits its work. Tiles are numbered
// image by image, row by row, and grouped in blocks of block tiles; the
// transformed input of a block is laid out as 36 C×block matrices, one
// per position ξ (see winoVDims). The input is first copied, padded and
// split into column phases, and the weights transformed, all of them, in
// tasks of the first phase. Then:
//
// With band = 0 ("tiles" mode, for many tiles) each task takes a block:
// it transforms its input, runs the GEMMs for all output channels and
// transforms their results, all in cache. With band > 0 ("shared" mode)
// the input of all blocks is transformed in a second phase, and each task
// of the third takes a block and a band of band output channels.
type winoPlan struct {
	th, tw, tiles int // tile rows and columns per image, tiles in all
	hp, wq        int // rows and columns of a phase of the zero-padded input (see winoRun)
	block, blocks int
	band, bands   int
	// ownWeights: in shared mode, each task takes a band and all blocks,
	// and transforms the band's weights itself, in cache.
	ownWeights bool
	workers    int
}

// planWinograd plans conv2DWinograd for p on up to workers goroutines (0:
// automatic).
func planWinograd(p ConvParams, workers int) winoPlan {
	OH, OW := p.OutH(), p.OutW()
	var pl winoPlan
	pl.th, pl.tw = (OH+winoOut-1)/winoOut, (OW+winoOut-1)/winoOut
	pl.tiles = p.N * pl.th * pl.tw
	// (At least nr columns for the portable transforms: the portable
	// micro-kernel reads rows of B at least nr apart.)
	pl.hp, pl.wq = winoOut*pl.th+2, pl.tw+1
	if !winoAsm() {
		pl.wq = max(pl.wq, nr)
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
		if p.N*p.M*p.C*9*OH*OW < convGrain {
			workers = 1
		}
	}
	pl.workers = workers
	// Tiles mode when there are blocks enough to share out, of 32 or 48
	// tiles so that a block's transformed input (36·C·block floats) and
	// GEMM results (36·M·block) stay in L2, and at most 128 channels so
	// that rereading the transformed weights for each block costs little
	// (measured on resnet18's layers: 48 tiles for 64 channels, 32 for
	// 128; for 256, shared mode is faster). Else shared mode, with the
	// bands transforming their own weights: tasks of bands of 24 to 48
	// output channels, about two per worker, and blocks of up to 64 tiles.
	block := 0
	switch c := max(p.C, p.M); {
	case c <= 64:
		block = 48
	case c <= 128:
		block = 32
	}
	if block > 0 && pl.tiles >= 2*workers*block {
		return pl.withBlock(block)
	}
	band := min(p.M, max(24, min(48, roundUp((p.M+2*workers-1)/(2*workers), mr))))
	nblk := (pl.tiles + 63) / 64
	block = roundUp((pl.tiles+nblk-1)/nblk, 8)
	return pl.withBands(p, block, band, true)
}

// withBlock returns pl in tiles mode with blocks of block tiles.
func (pl winoPlan) withBlock(block int) winoPlan {
	pl.block = min(block, pl.tiles)
	pl.blocks = (pl.tiles + pl.block - 1) / pl.block
	pl.band, pl.bands, pl.ownWeights = 0, 0, false
	return pl
}

// withBands returns pl in shared mode with blocks of block tiles and
// bands of band output channels, transforming their own weights if own.
func (pl winoPlan) withBands(p ConvParams, block, band int, own bool) winoPlan {
	pl = pl.withBlock(block)
	pl.band = min(band, p.M)
	pl.bands = (p.M + pl.band - 1) / pl.band
	pl.ownWeights = own
	return pl
}

// conv2DWinograd is Conv2D for 3×3 convolutions with stride 1, dilation
// 1 and one group (see winogradOK), by Winograd's F(4×4, 3×3), on up to
// workers goroutines (0: automatic), reading the weights from pre when
// they are already transformed there (see winoRun). p must be normalized.
func conv2DWinograd(p ConvParams, x, w, pre, bias, y []float32, workers int) {
	if p.N == 0 {
		return
	}
	winoRun(p, planWinograd(p, workers), x, w, pre, bias, y, false)
}

// winoRun is conv2DWinograd as planned by pl. With flip, w holds the
// weights of the convolution whose input gradient this is (p transposed):
// the kernel from input channel c to output o is w[c][o] rotated by 180°.
// pre, when not nil, holds w already transformed (see winoTransform), and
// w is not read.
func winoRun(p ConvParams, pl winoPlan, x, w, pre, bias, y []float32, flip bool) {
	C, M := p.C, p.M
	if pre != nil {
		pl.ownWeights = false
	}
	// The input is copied zero-padded and split into 4 column phases:
	// phase q of a plane holds, for each padded row h, the elements of
	// columns q, q+4, q+8, ... of the padded row (wq of them), so that
	// column s of tile j's window is element j + s/4 of phase s mod 4: for
	// consecutive tiles of a tile row, consecutive elements.
	qplane := winoOut * pl.hp * pl.wq
	_, xs := winoVDims(pl.block, C)
	us := winoStride(M * C)
	// One pooled buffer for the phases xp, the transformed weights u (but
	// in shared mode with bands transforming their own) and in shared
	// mode the transformed input v of all blocks; and one per goroutine
	// (see bufs): few requests to the pool, which holds buffers of all
	// sizes, mean fewer allocations.
	xpLen, uLen, vLen := p.N*C*qplane+winoTile, winoPos*us, 0
	if pl.ownWeights || pre != nil {
		uLen = 0
	}
	if pl.band > 0 {
		vLen = pl.blocks * winoPos * xs
	}
	sharedBuf := getBuf(xpLen + uLen + vLen)
	xp := (*sharedBuf)[:xpLen]
	u := (*sharedBuf)[xpLen : xpLen+uLen]
	v := (*sharedBuf)[xpLen+uLen:]
	if pre != nil {
		u = pre
	}
	clear(xp[p.N*C*qplane:])
	padChunk := max(1, copyGrain/qplane)
	padTasks := (p.N*C + padChunk - 1) / padChunk
	// pad fills the phases of input planes [lo, hi).
	pad := func(t int) {
		lo, hi := t*padChunk, min((t+1)*padChunk, p.N*C)
		for ic := lo; ic < hi; ic++ {
			winoPhases(&p, &pl, x[ic*p.H*p.W:(ic+1)*p.H*p.W], xp[ic*qplane:(ic+1)*qplane])
		}
	}
	// U[ξ] (M×C), all the weights transformed, in tasks of uChunk
	// kernels.
	uChunk := roundUp(max(1, copyGrain/winoPos), nr)
	uTasks := (M*C + uChunk - 1) / uChunk
	if pl.ownWeights || pre != nil {
		uTasks = 0
	}
	// first runs task i of the first phase.
	first := func(i int) {
		if i < padTasks {
			pad(i)
			return
		}
		i -= padTasks
		winoWeightRows(w, u, us, C, M, i*uChunk, min((i+1)*uChunk, M*C), flip)
	}
	if pl.band == 0 {
		q := newPhaseQueue(padTasks+uTasks, pl.blocks)
		par.Tasks(q.total(), pl.workers, func(_ int, tq *par.Queue) {
			var buf *[]float32
			var vb, mb []float32
			for t := tq.Next(-1); t >= 0; t = tq.Next(t) {
				ph, i := q.split(t)
				if ph == 0 {
					first(i)
					q.finish(ph)
					continue
				}
				q.wait(ph)
				if buf == nil {
					_, ms := winoMDims(pl.block, M)
					buf = getBuf(winoPos*xs + winoPos*ms + 8)
					vb, mb = (*buf)[:winoPos*xs], (*buf)[winoPos*xs:]
				}
				t0, t1 := i*pl.block, min((i+1)*pl.block, pl.tiles)
				winoInput(&p, &pl, xp, vb, t0, t1, 0, C)
				winoGemm(u, us, M, C, vb, t1-t0, mb)
				winoOutput(&p, &pl, mb, t1-t0, bias, y, 0, M, t0, t1)
				q.finish(ph)
			}
			putBuf(buf)
		})
		putBuf(sharedBuf)
		return
	}
	// Shared mode: the input of all blocks transformed in tasks of a block
	// and a chunk of channels, then tasks of a block and a band.
	cChunk := max(1, min(C, 4096/pl.block))
	cChunks := (C + cChunk - 1) / cChunk
	tasks2 := pl.blocks * pl.bands
	if pl.ownWeights {
		tasks2 = pl.bands
	}
	q := newPhaseQueue(padTasks+uTasks, pl.blocks*cChunks, tasks2)
	par.Tasks(q.total(), pl.workers, func(_ int, tq *par.Queue) {
		var buf *[]float32
		var mb, ub []float32
		for t := tq.Next(-1); t >= 0; t = tq.Next(t) {
			ph, i := q.split(t)
			switch ph {
			case 0:
				first(i)
			case 1:
				q.wait(ph)
				b, cc := i/cChunks, i%cChunks
				t0, t1 := b*pl.block, min((b+1)*pl.block, pl.tiles)
				winoInput(&p, &pl, xp, v[b*winoPos*xs:(b+1)*winoPos*xs], t0, t1, cc*cChunk, min((cc+1)*cChunk, C))
			case 2:
				if buf == nil {
					_, ms := winoMDims(pl.block, pl.band)
					mLen, ubLen := winoPos*ms+8, 0
					if pl.ownWeights {
						ubLen = winoPos * winoStride(pl.band*C)
					}
					buf = getBuf(mLen + ubLen)
					mb, ub = (*buf)[:mLen], (*buf)[mLen:]
				}
				if pl.ownWeights {
					// The band's weights, transformed while the input is,
					// for all blocks.
					m0, m1 := i*pl.band, min((i+1)*pl.band, M)
					ubs := winoStride((m1 - m0) * C)
					winoWeightRows(w[m0*winoKernelStep(flip, C):], ub, ubs, C, M, 0, (m1-m0)*C, flip)
					q.wait(ph)
					for b := 0; b < pl.blocks; b++ {
						t0, t1 := b*pl.block, min((b+1)*pl.block, pl.tiles)
						winoGemm(ub, ubs, m1-m0, C, v[b*winoPos*xs:(b+1)*winoPos*xs], t1-t0, mb)
						winoOutput(&p, &pl, mb, t1-t0, bias, y, m0, m1, t0, t1)
					}
					break
				}
				q.wait(ph)
				b, band := i/pl.bands, i%pl.bands
				m0, m1 := band*pl.band, min((band+1)*pl.band, M)
				t0, t1 := b*pl.block, min((b+1)*pl.block, pl.tiles)
				winoGemm(u[m0*C:], us, m1-m0, C, v[b*winoPos*xs:(b+1)*winoPos*xs], t1-t0, mb)
				winoOutput(&p, &pl, mb, t1-t0, bias, y, m0, m1, t0, t1)
			}
			q.finish(ph)
		}
		putBuf(buf)
	})
	putBuf(sharedBuf)
}

// winoKernelStep returns the offset in winoRun's w (C input channels)
// from the kernels of output channel 0 to those of output channel 1: the
// kernel from input c to output o is at 9·(o·C + c), or if flip at
// 9·(c·M + o).
func winoKernelStep(flip bool, C int) int {
	if flip {
		return 9
	}
	return 9 * C
}

// winoWeightRows transforms the kernels [i0, i1) of winoRun's w (M
// output and C input channels; kernel i = o·C + c is w[o][c], or w[c][o]
// rotated by 180° if flip) into u[ξ·us + i].
func winoWeightRows(w, u []float32, us, C, M, i0, i1 int, flip bool) {
	for i := i0; i < i1; {
		o, c := i/C, i%C
		n := min(C-c, i1-i)
		if flip {
			winoWeights(w[(c*M+o)*9:], M, u[i:], n, us, true)
		} else {
			winoWeights(w[i*9:], 1, u[i:], n, us, false)
		}
		i += n
	}
}

// winoWeights transforms n 3×3 kernels, kernel j at w[j·stride·9:] (rotated
// by 180° if flip), into u[ξ·us+j], ξ = 6a+b: U = G g Gᵀ, in chunks of
// winoTile kernels transposed so that the micro-kernel works on 16
// kernels at once: t[a][kw] = Σ_kh G[a][kh] g[kh][kw], then U[6a+b] =
// Σ_kw G[b][kw] t[a][kw]. Rotating g is reversing the columns of G in
// both.
func winoWeights(w []float32, stride int, u []float32, n, us int, flip bool) {
	g, gv := wino.g[:], wino.gv[:]
	if flip {
		g, gv = wino.gf[:], wino.gfv[:]
	}
	start := 0
	if winoAsm() && n >= 8 {
		var idx [8]int32
		for j := range idx {
			idx[j] = int32(j * stride * 9)
		}
		for ; start+8 <= n; start += 8 {
			_ = w[(start+7)*stride*9+8]
			_ = u[(winoPos-1)*us+start+7]
			winoWeightsAVX2(&w[start*stride*9], &idx[0], &gv[0], &u[start], us)
		}
	}
	var wt [9 * winoTile]float32         // wt[(3kh+kw)·16 + j]: kernel j's tap (kh, kw)
	var t [winoIn * 3 * winoTile]float32 // t[(3a+kw)·16 + j]
	var tail [winoPos * winoTile]float32 // a last partial chunk's U
	for i0 := start; i0 < n; i0 += winoTile {
		cnt := min(winoTile, n-i0)
		for j := 0; j < cnt; j++ {
			src := (*[9]float32)(w[(i0+j)*stride*9:])
			jj := j & (winoTile - 1)
			wt[jj] = src[0]
			wt[winoTile+jj] = src[1]
			wt[2*winoTile+jj] = src[2]
			wt[3*winoTile+jj] = src[3]
			wt[4*winoTile+jj] = src[4]
			wt[5*winoTile+jj] = src[5]
			wt[6*winoTile+jj] = src[6]
			wt[7*winoTile+jj] = src[7]
			wt[8*winoTile+jj] = src[8]
		}
		for kw := 0; kw < 3; kw++ {
			microKernel(3, g, 3, 1, wt[kw*winoTile:], 3*winoTile, t[kw*winoTile:], 3*winoTile, 1, 0, nil)
		}
		dst, ld := u[i0:], us
		if cnt < winoTile {
			dst, ld = tail[:], winoTile
		}
		for a := 0; a < winoIn; a++ {
			microKernel(3, g, 3, 1, t[a*3*winoTile:], winoTile, dst[a*winoIn*ld:], ld, 1, 0, nil)
		}
		if cnt < winoTile {
			for xi := 0; xi < winoPos; xi++ {
				copy(u[xi*us+i0:xi*us+i0+cnt], tail[xi*winoTile:])
			}
		}
	}
}

// winoVDims returns the layout of the transformed input of a block of nt
// tiles: position ξ's C×nt matrix V[ξ] has rows of ldv floats (with a
// slack at the end of each for the transforms' extra columns, 8 or 16,
// see winoInput) and starts at ξ·xs.
func winoVDims(nt, C int) (ldv, xs int) {
	ldv = roundUp(nt, 8) + 8
	if !winoAsm() {
		ldv = roundUp(nt, winoTile) + winoTile
	}
	return ldv, winoStride(C * ldv)
}

// winoMDims returns the layout of the GEMM results of a block of nt tiles
// for rows output channels: position ξ's rows×nt matrix has rows of ldm
// floats and starts at ξ·ms.
func winoMDims(nt, rows int) (ldm, ms int) {
	ldm = roundUp(nt, winoTile)
	return ldm, winoStride(rows * ldm)
}

// winoStride returns the distance to put between the matrices of
// successive positions ξ, at least n floats: an odd number of 64-byte
// lines, so that the 36 rows a transform reads or writes at once fall in
// different cache sets (at a multiple of 4 KiB they would all fall in one
// set, and run 3 times slower).
func winoStride(n int) int {
	n = roundUp(n, 16)
	if n/16%2 == 0 {
		n += 16
	}
	return n
}

// winoPhases writes the four column phases of one zero-padded input
// plane in (H×W) into dst (4 phases of hp×wq): phase q, row h, column j is
// the padded input's element (h, 4j+q), that is in[h-PadT][4j+q-PadL] or
// zero outside in.
func winoPhases(p *ConvParams, pl *winoPlan, in, dst []float32) {
	ps := pl.hp * pl.wq
	d0, d1, d2, d3 := dst[:ps], dst[ps:2*ps], dst[2*ps:3*ps], dst[3*ps:4*ps]
	// Groups of 8 columns of each phase split by winoSplitAVX2: all the
	// columns, the last group's extra ones falling in the next rows
	// (written later), except near the end of the phase.
	groups, lastGroups := 0, 0
	n := winoOut * pl.wq
	if winoAsm() {
		groups, lastGroups = (pl.wq+7)/8, pl.wq/8
		n = max(n, 32*groups)
	}
	// row is a padded input row: only in[ih] is copied in, at PadL, the
	// rest stays zero.
	var rowBuf [256]float32
	var row []float32
	if n <= len(rowBuf) {
		row = rowBuf[:n]
	} else {
		row = make([]float32, n) // images over 250 wide
	}
	for h := 0; h < pl.hp; h++ {
		ih := h - p.PadT
		r0, r1, r2, r3 := d0[h*pl.wq:(h+1)*pl.wq], d1[h*pl.wq:(h+1)*pl.wq], d2[h*pl.wq:(h+1)*pl.wq], d3[h*pl.wq:(h+1)*pl.wq]
		if ih < 0 || ih >= p.H {
			clear(r0)
			clear(r1)
			clear(r2)
			clear(r3)
			continue
		}
		copy(row[p.PadL:], in[ih*p.W:(ih+1)*p.W])
		j0, g := 0, groups
		if (h*pl.wq + 8*g) > ps {
			g = lastGroups
		}
		if g > 0 {
			_ = d3[h*pl.wq+8*g-1]
			_ = row[32*g-1]
			winoSplitAVX2(&row[0], g, &r0[0], ps)
			j0 = min(8*g, pl.wq)
		}
		for j := j0; j < len(r0); j++ {
			q := (*[winoOut]float32)(row[winoOut*j:])
			r0[j], r1[j], r2[j], r3[j] = q[0], q[1], q[2], q[3]
		}
	}
}

// phaseQueue numbers the tasks of successive phases for par.Tasks,
// and lets a task wait for all tasks of the earlier phases. Tasks are
// handed out in order, so the tasks a task waits for have all been
// taken, by running goroutines: waiting cannot deadlock.
type phaseQueue struct {
	ends []int
	done []sync.WaitGroup
}

func newPhaseQueue(counts ...int) *phaseQueue {
	q := &phaseQueue{ends: make([]int, len(counts)), done: make([]sync.WaitGroup, len(counts))}
	n := 0
	for k, c := range counts {
		n += c
		q.ends[k] = n
		q.done[k].Add(c)
	}
	return q
}

func (q *phaseQueue) total() int { return q.ends[len(q.ends)-1] }

// split returns the phase of task t and its number within the phase.
func (q *phaseQueue) split(t int) (phase, i int) {
	start := 0
	for k, e := range q.ends {
		if t < e {
			return k, t - start
		}
		start = e
	}
	panic("kernels: task out of range")
}

// wait blocks until all tasks of the phases before phase are complete.
func (q *phaseQueue) wait(phase int) {
	for k := 0; k < phase; k++ {
		q.done[k].Wait()
	}
}

// finish marks a task of phase complete.
func (q *phaseQueue) finish(phase int) { q.done[phase].Done() }

// winoGemm runs the 36 GEMMs of a block of nt tiles: m[ξ] (rows×nt, see
// winoMDims) = u[ξ] (rows×C at u[ξ·us:], row stride C) · v[ξ] (C×nt, see
// winoVDims).
func winoGemm(u []float32, us, rows, C int, v []float32, nt int, m []float32) {
	ldv, xs := winoVDims(nt, C)
	ldm, ms := winoMDims(nt, rows)
	for xi := 0; xi < winoPos; xi++ {
		op := gemmOp{m: rows, n: nt, k: C, alpha: 1, a: u[xi*us:], lda: C,
			b: v[xi*xs : (xi+1)*xs], ldb: ldv, c: m[xi*ms : (xi+1)*ms], ldc: ldm}
		op.run(0, rows, 0, nt, nil, nil)
	}
}

// winoOffs are the offsets, in a row a of the vertical transforms z
// (winoInput), of the six columns of a window: column s is phase s mod 4,
// shifted by s/4 tiles.
var winoOffs = [winoIn]int32{0, winoTile, 2 * winoTile, 3 * winoTile, 1, winoTile + 1}

// winoInput transforms the input of channels [c0, c1) of tiles [t0, t1)
// from the column phases xp into v: V[ξ][c][t-t0] (see winoVDims). It
// works by segments of tiles of one tile row, 8 tiles at a time with
// winoInAVX2. Else the segments have at most winoTile-1 tiles: for each
// channel and segment, z[a][q][j] = Σ_r Bᵀ[a][r] (phase q of row
// 4i+r)[j0+j] for the four phases q, and then V[6a+b][c][j] = Σ_s
// Bᵀ[b][s] z[a][s mod 4][j + s/4], both on the micro-kernel, 16 (or 8)
// tiles at a time. Both write whole rows of 8 or 16 tiles: the columns
// past the segment, which belong to the next segment or to the slack at
// the end of the row, are written again later.
func winoInput(p *ConvParams, pl *winoPlan, xp, v []float32, t0, t1, c0, c1 int) {
	C := p.C
	ldv, xs := winoVDims(t1-t0, C)
	qplane := winoOut * pl.hp * pl.wq
	if winoAsm() {
		// 8 tiles at a time, any number of them from a tile row.
		ps := pl.hp * pl.wq
		for c := c0; c < c1; c++ {
			for t := t0; t < t1; {
				img, r := t/(pl.th*pl.tw), t%(pl.th*pl.tw)
				ti, tj := r/pl.tw, r%pl.tw
				n := min(pl.tw-tj, t1-t)
				src := xp[(img*C+c)*qplane+winoOut*ti*pl.wq+tj:]
				dst := v[c*ldv+t-t0:]
				for j := 0; j < n; j += 8 {
					_ = src[j+3*ps+5*pl.wq+8]
					_ = dst[j+(winoPos-1)*xs+7]
					winoInAVX2(&src[j], ps, pl.wq, &dst[j], xs)
				}
				t += n
			}
		}
		return
	}
	var z [winoIn*winoOut*winoTile + winoTile]float32
	for c := c0; c < c1; c++ {
		for t := t0; t < t1; {
			img, r := t/(pl.th*pl.tw), t%(pl.th*pl.tw)
			ti, tj := r/pl.tw, r%pl.tw
			n := min(pl.tw-tj, t1-t, winoTile-1)
			half := n < winoTile/2
			src := xp[(img*C+c)*qplane+winoOut*ti*pl.wq+tj:]
			for q := 0; q < winoOut; q++ {
				sq := src[q*pl.hp*pl.wq:]
				if half {
					microKernelHalf(winoIn, wino.bt[:], winoIn, 1, sq, pl.wq, z[q*winoTile:], winoOut*winoTile, 1, 0, nil)
				} else {
					microKernel(winoIn, wino.bt[:], winoIn, 1, sq, pl.wq, z[q*winoTile:], winoOut*winoTile, 1, 0, nil)
				}
			}
			dst := v[c*ldv+t-t0:]
			for a := 0; a < winoIn; a++ {
				microKernelIdx(half, winoIn, wino.bt[:], winoIn, 1, z[a*winoOut*winoTile:], winoOffs[:], winoTile+1,
					dst[a*winoIn*xs:], xs, 1, 0, nil)
			}
			t += n
		}
	}
}

// winoOutput transforms the GEMM results m of a block of nt tiles, for
// output channels [m0, m1) (see winoMDims), into the outputs of tiles
// [t0, t1) (all or a part of the block's), adding the bias: with
// winoOutAVX2 8 tiles of a tile row at a time, else on the micro-kernel
// 16 tiles at a time.
func winoOutput(p *ConvParams, pl *winoPlan, m []float32, nt int, bias, y []float32, m0, m1, t0, t1 int) {
	OH, OW := p.OutH(), p.OutW()
	P := OH * OW
	ntp, ms := winoMDims(nt, m1-m0)
	if winoAsm() {
		// 8 tiles of a tile row at a time, straight into y if they are
		// whole, else through tmp.
		var tmp [winoOut * 8 * winoOut]float32
		for o := m0; o < m1; o++ {
			var bv float32
			if bias != nil {
				bv = bias[o]
			}
			mo := m[(o-m0)*ntp:]
			for t := t0; t < t1; {
				img, r := t/(pl.th*pl.tw), t%(pl.th*pl.tw)
				ti, tj := r/pl.tw, r%pl.tw
				n := min(pl.tw-tj, t1-t)
				rows := min(winoOut, OH-winoOut*ti)
				yo := y[(img*p.M+o)*P+winoOut*ti*OW:]
				for j := 0; j < n; j += 8 {
					src := mo[t-t0+j:]
					_ = src[(winoPos-1)*ms+7]
					x0 := winoOut * (tj + j)
					cols := min(winoOut*min(8, n-j), OW-x0)
					if rows == winoOut && cols == winoOut*8 {
						_ = yo[3*OW+x0+cols-1]
						winoOutAVX2(&src[0], ms, &yo[x0], OW, bv)
						continue
					}
					winoOutAVX2(&src[0], ms, &tmp[0], winoOut*8, bv)
					for u := 0; u < rows; u++ {
						copy(yo[u*OW+x0:u*OW+x0+cols], tmp[u*winoOut*8:])
					}
				}
				t += n
			}
		}
		return
	}
	var z [winoPos * winoTile]float32
	var out [winoOut * winoIn * winoTile]float32
	var bv [mr]float32
	for tp := t0; tp < t1; tp += winoTile {
		var base [winoTile]int
		var full [winoTile]bool
		var hv, wv [winoTile]int // valid rows and columns of each tile
		n := min(winoTile, t1-tp)
		for j := 0; j < n; j++ {
			t := tp + j
			img, r := t/(pl.th*pl.tw), t%(pl.th*pl.tw)
			ti, tj := r/pl.tw, r%pl.tw
			base[j] = img*p.M*P + winoOut*ti*OW + winoOut*tj
			hv[j], wv[j] = min(winoOut, OH-winoOut*ti), min(winoOut, OW-winoOut*tj)
			full[j] = hv[j] == winoOut && wv[j] == winoOut
		}
		col := tp - t0
		for o := m0; o < m1; o++ {
			// z[(6u+b)·16 + j] = Σ_a Aᵀ[u][a] m[6a+b][o][j] (rows u = 4, 5
			// are zero), column by column b.
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
				jj := j & (winoTile - 1)
				if full[j] {
					dst := yo[base[j] : base[j]+3*OW+winoOut]
					for uu := 0; uu < winoOut; uu++ {
						row := (*[winoOut]float32)(dst[uu*OW:])
						ou := (*[winoIn * winoTile]float32)(out[uu*winoIn*winoTile:])
						row[0] = ou[jj]
						row[1] = ou[winoTile+jj]
						row[2] = ou[2*winoTile+jj]
						row[3] = ou[3*winoTile+jj]
					}
					continue
				}
				dst := yo[base[j]:]
				for uu := 0; uu < hv[j]; uu++ {
					row := dst[uu*OW : uu*OW+wv[j]]
					for vv := range row {
						row[vv] = out[(uu*winoIn+vv)*winoTile+jj]
					}
				}
			}
		}
	}
}

// winoInputGrad is conv2DInputGrad by conv2DWinograd, for p (normalized)
// with winogradOK(p) and padding at most 2 on each side: the input
// gradient is then the convolution of gy with the weights rotated by 180°
// and their channel axes swapped (see ConvParams.transposed), which
// winoRun reads from w as they are (or pre, already transformed).
func winoInputGrad(p ConvParams, w, pre, gy, gx []float32, workers int) {
	q, _ := p.transposed()
	if q.N == 0 {
		return
	}
	winoRun(q, planWinograd(q, workers), gy, w, pre, nil, gx, true)
}

// WinogradWeights returns the weights w of the convolution p transformed
// once for Winograd's F(4×4, 3×3), as Conv2DPrepared reads them (with
// grad, as Conv2DInputGradPrepared reads them: the transform of the input
// gradient's convolution), or nil when that convolution is not one
// Winograd computes (see winogradOK; p.N does not matter). A caller that
// runs the same constant weights many times saves the transform on every
// call; the result is 4 times the size of w.
func WinogradWeights(p ConvParams, w []float32, grad bool) []float32 {
	p = p.norm()
	q, flip := p, false
	if grad {
		var ok bool
		if q, ok = p.transposed(); !ok {
			return nil
		}
		flip = true
	}
	if !winogradOK(q) {
		return nil
	}
	pw := p
	pw.N = 0
	pw.check(0, len(w), 0, "x", "w", "y")
	C, M := q.C, q.M
	us := winoStride(M * C)
	u := make([]float32, winoPos*us)
	chunk := roundUp(max(1, copyGrain/winoPos), nr)
	par.Chunks(M*C, (M*C+chunk-1)/chunk, func(_, lo, hi int) {
		winoWeightRows(w, u, us, C, M, lo, hi, flip)
	})
	return u
}

// Conv2DPrepared is Conv2D with u, when not nil, the weights w as
// WinogradWeights(p, w, false) returned them: when Conv2D would run the
// convolution by Winograd's algorithm, it reads u instead of transforming
// w again.
func Conv2DPrepared(p ConvParams, x, w, u, bias, y []float32) {
	conv2DWith(p, x, w, u, bias, y, 0)
}

// Conv2DInputGradPrepared is Conv2DInputGrad with u, when not nil, the
// weights w as WinogradWeights(p, w, true) returned them.
func Conv2DInputGradPrepared(p ConvParams, w, u, gy, gx []float32) {
	conv2DInputGradWith(p, w, u, gy, gx, 0)
}

// UsesWinograd reports whether Conv2D (with grad, Conv2DInputGrad) runs
// the convolution p by Winograd's algorithm, and so whether weights
// prepared by WinogradWeights would be read.
func UsesWinograd(p ConvParams, grad bool) bool {
	p = p.norm()
	if grad {
		q, ok := p.transposed()
		return ok && useWinograd(q)
	}
	return useWinograd(p)
}
