package kernels

import (
	"fmt"
	"runtime"
	"slices"

	"github.com/loupe-ml/loupe/internal/par"
)

// ConvParams describes a 2-D convolution over NCHW float32 tensors: the
// input x is N×C×H×W, the weight w is M×(C/Group)×KH×KW and the output y
// is N×M×OutH()×OutW(). A 1-D convolution is the case H = KH = 1.
// Zero strides, dilations and group count are read as 1.
type ConvParams struct {
	N, C, H, W int // input batch, channels, height, width
	M          int // output channels
	KH, KW     int // kernel height and width

	StrideH, StrideW int
	PadT, PadL       int // zero padding before the first row / column
	PadB, PadR       int // zero padding after the last row / column
	DilH, DilW       int
	Group            int
}

// norm returns p with zero strides, dilations and group count set to 1.
func (p ConvParams) norm() ConvParams {
	if p.StrideH == 0 {
		p.StrideH = 1
	}
	if p.StrideW == 0 {
		p.StrideW = 1
	}
	if p.DilH == 0 {
		p.DilH = 1
	}
	if p.DilW == 0 {
		p.DilW = 1
	}
	if p.Group == 0 {
		p.Group = 1
	}
	return p
}

// OutH is the output height: (H + PadT + PadB - DilH*(KH-1) - 1)/StrideH + 1.
func (p ConvParams) OutH() int {
	p = p.norm()
	return (p.H+p.PadT+p.PadB-p.DilH*(p.KH-1)-1)/p.StrideH + 1
}

// OutW is the output width: (W + PadL + PadR - DilW*(KW-1) - 1)/StrideW + 1.
func (p ConvParams) OutW() int {
	p = p.norm()
	return (p.W+p.PadL+p.PadR-p.DilW*(p.KW-1)-1)/p.StrideW + 1
}

// check validates p and the slice lengths; it panics on a mismatch, which
// is a programmer error.
func (p ConvParams) check(x, w, y int, xs, ws, ys string) {
	if p.N < 0 || p.C <= 0 || p.H <= 0 || p.W <= 0 || p.M <= 0 || p.KH <= 0 || p.KW <= 0 ||
		p.StrideH <= 0 || p.StrideW <= 0 || p.DilH <= 0 || p.DilW <= 0 || p.Group <= 0 ||
		p.PadT < 0 || p.PadL < 0 || p.PadB < 0 || p.PadR < 0 {
		panic(fmt.Sprintf("kernels: invalid convolution %+v", p))
	}
	if p.C%p.Group != 0 || p.M%p.Group != 0 {
		panic(fmt.Sprintf("kernels: channels C=%d, M=%d not divisible by group %d", p.C, p.M, p.Group))
	}
	if p.OutH() <= 0 || p.OutW() <= 0 {
		panic(fmt.Sprintf("kernels: convolution %+v has an empty output", p))
	}
	nx := p.N * p.C * p.H * p.W
	nw := p.M * (p.C / p.Group) * p.KH * p.KW
	ny := p.N * p.M * p.OutH() * p.OutW()
	if x < nx || w < nw || y < ny {
		panic(fmt.Sprintf("kernels: convolution %+v: len(%s)=%d, len(%s)=%d, len(%s)=%d; want %d, %d, %d",
			p, xs, x, ws, w, ys, y, nx, nw, ny))
	}
}

// rowEfficiency is the fraction of the micro-kernel's work that is
// useful for output rows of width w cut into panels of nr columns (the
// last one nr/2 wide if it fits).
func rowEfficiency(w int) float64 {
	r := w % nr
	pad := w
	switch {
	case r == 0:
	case r <= nr/2:
		pad = w - r + nr/2
	default:
		pad = w - r + nr
	}
	return float64(w) / float64(pad)
}

// transposed returns, for a convolution with stride 1, the convolution
// whose output is its input gradient: input gy (M channels, OutH×OutW),
// output C channels of H×W, weights flipped with their channel axes
// swapped, and padding (K-1)·Dil minus the original on each side. ok is
// false for strides above 1 or padding wider than (K-1)·Dil.
func (p ConvParams) transposed() (q ConvParams, ok bool) {
	eh, ew := (p.KH-1)*p.DilH, (p.KW-1)*p.DilW
	if p.StrideH != 1 || p.StrideW != 1 || p.PadT > eh || p.PadB > eh || p.PadL > ew || p.PadR > ew {
		return q, false
	}
	return ConvParams{
		N: p.N, C: p.M, H: p.OutH(), W: p.OutW(), M: p.C, KH: p.KH, KW: p.KW,
		StrideH: 1, StrideW: 1, DilH: p.DilH, DilW: p.DilW, Group: p.Group,
		PadT: eh - p.PadT, PadL: ew - p.PadL, PadB: eh - p.PadB, PadR: ew - p.PadR,
	}, true
}

// pointwise reports whether the convolution is 1×1 with stride 1 and no
// padding, so that each image is already its own im2col matrix.
func (p ConvParams) pointwise() bool {
	return p.KH == 1 && p.KW == 1 && p.StrideH == 1 && p.StrideW == 1 &&
		p.PadT == 0 && p.PadL == 0 && p.PadB == 0 && p.PadR == 0
}

// convGrain is the number of multiply-adds below which a convolution runs
// on one goroutine (see parallelMACs).
const convGrain = 1 << 22

// copyGrain is the number of elements below which the copies of im2col,
// col2im and padding stay on one goroutine; it is also the least work of
// one of their tasks.
const copyGrain = 1 << 16

// copyChunk is the least number of units of size elements in one copy
// task given a threads argument (forced thread counts split finely).
func copyChunk(threads, size int) int {
	if threads > 0 {
		return 1
	}
	return max(1, copyGrain/size)
}

// copyWorkers is the number of goroutines for copying size elements given
// a threads argument (0: automatic).
func copyWorkers(threads, size int) int {
	if threads > 0 {
		return threads
	}
	if size < 4*copyGrain {
		return 1
	}
	return runtime.GOMAXPROCS(0)
}

// batchWorkers is how many goroutines split the batch of n images, each
// running single-threaded GEMMs, for a convolution of flops multiply-adds
// given the workers argument of the functions below (0: automatic), and
// the threads argument for the GEMMs and copies inside.
func batchWorkers(n, flops, workers int) (batch, threads int) {
	switch {
	case n < 2:
		return 1, workers
	case workers > 0:
		return min(n, workers), 1
	case flops < convGrain:
		return 1, 1
	}
	return min(n, runtime.GOMAXPROCS(0)), 1
}

// Conv2D computes y = conv(x, w) + bias over NCHW tensors, with y of shape
// N×M×OutH()×OutW(). bias has M entries or is nil. y is caller-allocated
// and fully overwritten.
//
// It is a GEMM of the weights (M/Group × C/Group·KH·KW per group) by each
// image's im2col matrix, without building that matrix: the micro-kernel
// reads its panels straight from the input (zero-padded, and split into
// phases for strides, in one cheap copy; see conv2DDirect), or, for
// output rows of at most 8 with many output channels, from blocks of it
// built in cache in the micro-kernel's packed layout. The bias is added by
// the micro-kernel. Blocks of output columns of all images and groups
// (and, when there are too few, bands of output channels) are shared out
// among GOMAXPROCS goroutines.
func Conv2D(p ConvParams, x, w, bias, y []float32) {
	conv2D(p, x, w, bias, y, 0)
}

// conv2D is Conv2D on up to workers goroutines (0: automatic).
func conv2D(p ConvParams, x, w, bias, y []float32, workers int) {
	conv2DWith(p, x, w, nil, bias, y, workers)
}

// conv2DWith is conv2D reading, when not nil and the convolution runs by
// Winograd's algorithm, the weights already transformed in u (see
// WinogradWeights).
func conv2DWith(p ConvParams, x, w, u, bias, y []float32, workers int) {
	p = p.norm()
	p.check(len(x), len(w), len(y), "x", "w", "y")
	if bias != nil && len(bias) < p.M {
		panic(fmt.Sprintf("kernels: len(bias)=%d < M=%d", len(bias), p.M))
	}
	if useWinograd(p) {
		conv2DWinograd(p, x, w, u, bias, y, workers)
		return
	}
	// Reading the input in place saves building im2col blocks, but cuts
	// the output into panels per output row; with rows of at most 8 and
	// many output channels to share the im2col cost, packing is faster
	// (measured on resnet18's 7×7 layers: 108 against 101 GFLOP/s).
	if p.OutW() > nr/2 || p.M/p.Group < 256 {
		conv2DDirect(p, x, w, bias, y, workers)
		return
	}
	OH, OW := p.OutH(), p.OutW()
	P := OH * OW
	cg, mg := p.C/p.Group, p.M/p.Group
	K := cg * p.KH * p.KW
	inPlane := p.H * p.W
	panels := (P + nr - 1) / nr
	plan := planConv(p.N*p.Group, panels, P, K, mg, workers)
	tasks := p.N * p.Group * plan.chunks * plan.bands
	par.Tasks(tasks, plan.workers, func(_ int, q *par.Queue) {
		buf := getBuf(K * plan.maxCols)
		lastChunk := -1
		for t := q.Next(-1); t >= 0; t = q.Next(t) {
			band := t % plan.bands
			ch := t / plan.bands % plan.chunks
			im := t / (plan.bands * plan.chunks) // n*Group + g
			n, g := im/p.Group, im%p.Group
			q0 := min(ch*panels/plan.chunks*nr, P)
			q1 := min((ch+1)*panels/plan.chunks*nr, P)
			if q0 >= q1 {
				continue
			}
			xg := x[(n*p.C+g*cg)*inPlane : (n*p.C+(g+1)*cg)*inPlane]
			// The bands of a chunk share its packed columns when they
			// fall to the same worker.
			if chunkID := t / plan.bands; chunkID != lastChunk {
				packIm2col(p, xg, *buf, q0, q1)
				lastChunk = chunkID
			}
			op := gemmOp{m: mg, n: q1 - q0, k: K, alpha: 1, a: w[g*mg*K : (g+1)*mg*K], lda: K,
				c: y[(n*p.M+g*mg)*P+q0 : (n*p.M+(g+1)*mg)*P], ldc: P}
			var bg []float32
			if bias != nil {
				bg = bias[g*mg : (g+1)*mg]
			}
			mp := (mg + mr - 1) / mr
			m0, m1 := band*mp/plan.bands*mr, min((band+1)*mp/plan.bands*mr, mg)
			if m0 < m1 {
				op.run(m0, m1, 0, q1-q0, *buf, bg)
			}
		}
		putBuf(buf)
	})
}

// conv2DDirect is Conv2D as an "implicit GEMM": the micro-kernel reads
// each row of a B panel, 16 consecutive output positions of one output
// row for one (c, kh, kw), straight from the input through a table of
// per-row offsets, so that no im2col matrix is built.
//
// For that the 16 inputs must be consecutive in memory. With padding the
// input is first copied zero-padded; with strides sh, sw it is split
// into sh·sw phase images, phase (a, b) holding the padded input's rows
// a, a+sh, ... and columns b, b+sw, ..., so that tap (kh, kw) of output
// (oh, ow) is element (oh + kh·DilH/sh, ow + kw·DilW/sw) of phase
// (kh·DilH mod sh, kw·DilW mod sw): consecutive in ow. Only the phases
// some tap reads are built (a 1×1 stride-2 convolution reads one).
func conv2DDirect(p ConvParams, x, w, bias, y []float32, workers int) {
	OH, OW := p.OutH(), p.OutW()
	P := OH * OW
	cg, mg := p.C/p.Group, p.M/p.Group
	K := cg * p.KH * p.KW
	images := p.N * p.Group
	sh, sw := p.StrideH, p.StrideW
	Hp, Wp := p.H+p.PadT+p.PadB, p.W+p.PadL+p.PadR
	Hq, Wq := (Hp+sh-1)/sh, (Wp+sw-1)/sw // phase image size
	// phaseA[a] is the index of the row phase a among those used, or -1.
	phaseA, phaseB := make([]int, sh), make([]int, sw)
	na, nb := usedPhases(phaseA, p.KH, p.DilH), usedPhases(phaseB, p.KW, p.DilW)
	chanLen := na * nb * Hq * Wq // one input channel, all its phases
	copied := p.PadT+p.PadL+p.PadB+p.PadR > 0 || sh > 1 || sw > 1
	// Output rows are runs of OW positions whose inputs are consecutive;
	// the input origins of successive rows are Wq apart. If Wq = OW the
	// runs follow on directly: all P positions are one run.
	rows, rowLen, rowStride := OH, OW, Wq
	if Wq == OW {
		rows, rowLen, rowStride = 1, P, 0
	}
	ppr := (rowLen + nr - 1) / nr // panels per row
	panels := rows * ppr
	plan := planConv(images, panels, P, K, mg, workers)
	// The input of image group i starts at src[i*imgLen].
	src, imgLen := x, cg*chanLen
	var copyBuf *[]float32
	if copied {
		copyBuf = getBuf(images*imgLen + nr)
		src = *copyBuf
		clear(src[images*imgLen:])
		par.Range(images*cg, max(1, copyGrain/chanLen), plan.workers, func(lo, hi int) {
			for ic := lo; ic < hi; ic++ {
				in := x[ic*p.H*p.W : (ic+1)*p.H*p.W]
				for a, ia := range phaseA {
					for b, ib := range phaseB {
						if ia < 0 || ib < 0 {
							continue
						}
						dst := src[ic*chanLen+(ia*nb+ib)*Hq*Wq:][:Hq*Wq]
						fillPhase(p, in, dst, a, b, Hq, Wq)
					}
				}
			}
		})
	}
	// Offsets of the rows of B from a panel's origin: r = (c·KH + kh)·KW
	// + kw reads channel c, phase (kh·DilH mod sh, kw·DilW mod sw), row
	// kh·DilH/sh, column kw·DilW/sw.
	offsBuf := getInt32Buf(K)
	offs := *offsBuf
	for c, r := 0, 0; c < cg; c++ {
		for kh := 0; kh < p.KH; kh++ {
			ph := kh * p.DilH
			for kw := 0; kw < p.KW; kw++ {
				pw := kw * p.DilW
				phase := phaseA[ph%sh]*nb + phaseB[pw%sw]
				offs[r] = int32(c*chanLen + phase*Hq*Wq + ph/sh*Wq + pw/sw)
				r++
			}
		}
	}
	tasks := images * plan.chunks * plan.bands
	par.Tasks(tasks, plan.workers, func(_ int, q *par.Queue) {
		for t := q.Next(-1); t >= 0; t = q.Next(t) {
			band := t % plan.bands
			ch := t / plan.bands % plan.chunks
			im := t / (plan.bands * plan.chunks)
			n, g := im/p.Group, im%p.Group
			pa, pb := ch*panels/plan.chunks, (ch+1)*panels/plan.chunks
			mp := (mg + mr - 1) / mr
			m0, m1 := band*mp/plan.bands*mr, min((band+1)*mp/plan.bands*mr, mg)
			if pa >= pb || m0 >= m1 {
				continue
			}
			var bg []float32
			if bias != nil {
				bg = bias[g*mg : (g+1)*mg]
			}
			d := directConv{
				img: src[im*imgLen:], offs: offs, K: K,
				w: w[g*mg*K : (g+1)*mg*K], bias: bg,
				y: y[(n*p.M+g*mg)*P : (n*p.M+(g+1)*mg)*P], P: P,
				rowLen: rowLen, rowStride: rowStride, ppr: ppr,
			}
			d.run(m0, m1, pa, pb)
		}
	})
	putInt32Buf(offsBuf)
	putBuf(copyBuf)
}

// usedPhases sets phase[a] for a in [0, stride) to the index of a among
// the residues mod stride of the taps k·dil (k < taps), or -1 if none has
// residue a, and returns how many residues occur.
func usedPhases(phase []int, taps, dil int) int {
	stride := len(phase)
	for a := range phase {
		phase[a] = -1
	}
	for k := 0; k < taps; k++ {
		phase[k*dil%stride] = 0
	}
	n := 0
	for a := range phase {
		if phase[a] == 0 {
			phase[a] = n
			n++
		}
	}
	return n
}

// fillPhase writes phase (a, b) of one zero-padded input channel in (H×W)
// into dst (Hq×Wq): dst[i][j] = padded[i·StrideH + a][j·StrideW + b],
// where padded[r][c] = in[r-PadT][c-PadL] inside the input and 0 outside.
func fillPhase(p ConvParams, in, dst []float32, a, b, Hq, Wq int) {
	sw := p.StrideW
	// Columns j whose input column j·sw + b - PadL is inside [0, W).
	jlo, jhi := colRange(b-p.PadL, sw, p.W, Wq)
	for i := 0; i < Hq; i++ {
		row := dst[i*Wq : (i+1)*Wq]
		ih := i*p.StrideH + a - p.PadT
		if ih < 0 || ih >= p.H || jlo >= jhi {
			clear(row)
			continue
		}
		src := in[ih*p.W : (ih+1)*p.W]
		clear(row[:jlo])
		clear(row[jhi:])
		iw := jlo*sw + b - p.PadL
		if sw == 1 {
			copy(row[jlo:jhi], src[iw:])
			continue
		}
		for j := jlo; j < jhi; j++ {
			row[j] = src[iw]
			iw += sw
		}
	}
}

// directConv is one image group of conv2DDirect.
type directConv struct {
	img     []float32 // the (padded) input from this image group on
	offs    []int32   // offset of each row of B from a panel's origin
	K       int       // depth
	w, bias []float32 // weights (mg×K) and bias (mg or nil)
	y       []float32 // output (mg×P)
	P       int
	// Output runs: run i starts at output column i·rowLen, and its input
	// origin at i·rowStride; each is cut into ppr panels of nr columns.
	rowLen, rowStride, ppr int
}

// run computes output channels [m0, m1) for panels [pa, pb).
func (d *directConv) run(m0, m1, pa, pb int) {
	K := d.K
	var edgeBuf, gathBuf *[]float32
	for pc := 0; pc < K; pc += kcBlock {
		kcur := min(kcBlock, K-pc)
		offs := d.offs[pc : pc+kcur]
		maxOff := int(slices.Max(offs))
		beta, bv := float32(0), d.bias
		if pc > 0 {
			beta, bv = 1, nil
		}
		for ic := m0; ic < m1; ic += mcBlock {
			mcur := min(mcBlock, m1-ic)
			full := mcur / mr * mr
			a := d.w[ic*K+pc:]
			// A last partial panel of weights is copied, zero-padded.
			var ea []float32
			var edgeBias [mr]float32
			if full < mcur {
				if edgeBuf == nil {
					edgeBuf = getBuf(mr * kcBlock)
				}
				ea = (*edgeBuf)[:mr*kcur]
				clear(ea)
				for r := 0; r < mcur-full; r++ {
					for p := 0; p < kcur; p++ {
						ea[p*mr+r] = a[(full+r)*K+p]
					}
				}
				if bv != nil {
					copy(edgeBias[:], bv[ic+full:ic+mcur])
				}
			}
			for idx := pa; idx < pb; idx++ {
				row, col := idx/d.ppr, idx%d.ppr*nr
				width := min(nr, d.rowLen-col)
				origin := row*d.rowStride + col
				q := row*d.rowLen + col // output column
				half := width <= nr/2
				readW := nr
				if half {
					readW = nr / 2
				}
				b := d.img[origin:]
				var bp []float32 // the panel packed, if it cannot be read in place
				if origin+maxOff+readW > len(d.img) {
					// Only at the very end of the input: gather with
					// zeros past it.
					if gathBuf == nil {
						gathBuf = getBuf(nr * kcBlock)
					}
					bp = (*gathBuf)[:nr*kcur]
					for p, o := range offs {
						row := bp[p*nr : (p+1)*nr]
						clear(row)
						if o := origin + int(o); o < len(d.img) {
							copy(row[:width], d.img[o:])
						}
					}
				}
				for ir := 0; ir < mcur; ir += mr {
					ap, rs, cs := a[ir*K:], K, 1
					var bsp []float32
					if ir == full {
						ap, rs, cs = ea, 1, mr
						if bv != nil {
							bsp = edgeBias[:]
						}
					} else if bv != nil {
						bsp = bv[ic+ir : ic+ir+mr]
					}
					c := d.y[(ic+ir)*d.P+q:]
					if ir < full && (width == nr || width == nr/2) && bp == nil {
						microKernelIdx(half, kcur, ap, rs, cs, b, offs, maxOff, c, d.P, 1, beta, bsp)
						continue
					}
					var tile [mr * nr]float32
					if bp != nil {
						microKernel(kcur, ap, rs, cs, bp, nr, tile[:], nr, 1, 0, bsp)
					} else {
						microKernelIdx(half, kcur, ap, rs, cs, b, offs, maxOff, tile[:], nr, 1, 0, bsp)
					}
					storeTile(c, d.P, &tile, min(mr, mcur-ir), width, beta)
				}
			}
		}
	}
	putBuf(edgeBuf)
	putBuf(gathBuf)
}

// convPlan is how a forward convolution is split into tasks: each of the
// N·Group image groups into chunks blocks of output columns (at most
// maxCols each), and its output channels into bands.
type convPlan struct {
	chunks, bands, maxCols, workers int
}

// planConv splits images (N·Group of them) with P output columns in
// panels column panels, depth K and mg output channels each, for up to
// workers goroutines (0: automatic).
func planConv(images, panels, P, K, mg, workers int) convPlan {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
		if images*P*K*mg < convGrain {
			workers = 1
		}
	}
	// A block of packed columns of depth kcBlock should stay in L2 with
	// room to spare: 64 Ki floats (256 KiB).
	perChunk := max(1, (1<<16)/min(K, kcBlock)/nr)
	chunks := (panels + perChunk - 1) / perChunk
	bands := 1
	if workers > 1 {
		// Too few tasks: split the columns further, or, when the weights
		// outweigh an image's columns (mg > P), the output channels: every
		// chunk streams all the weights, every band re-packs the columns.
		if images*chunks < workers && mg <= P {
			chunks = min(panels, (workers+images-1)/images)
		}
		if images*chunks < workers {
			bands = min((mg+mr-1)/mr, (workers+images*chunks-1)/(images*chunks))
		}
		// Few tasks: make their number a multiple of the workers.
		if t := images * chunks * bands; t < 8*workers && t%workers != 0 {
			for c := chunks + 1; c <= panels && c <= 2*chunks; c++ {
				if images*c*bands%workers == 0 {
					chunks = c
					break
				}
			}
		}
	}
	maxCols := (panels + chunks - 1) / chunks * nr
	return convPlan{chunks: chunks, bands: bands, maxCols: maxCols, workers: workers}
}

// packIm2col writes columns [q0, q1) of the im2col matrix of one image
// group xg (C/Group planes of H×W; row r = (c·KH + kh)·KW + kw, column q =
// oh·OW + ow) into dst in the packed-B layout of packBAll, for a GEMM of
// depth C/Group·KH·KW and q1-q0 columns. It fills one nr-column panel at a
// time, writing dst in order: a panel's columns are a few runs of
// consecutive output positions (segments), and each segment of each row
// is one short copy from the input (or a strided gather, or zeros).
func packIm2col(p ConvParams, xg, dst []float32, q0, q1 int) {
	type segment struct{ oh, ow, j, l int } // panel columns j..j+l-1 are output row oh, columns ow..
	cg := p.C / p.Group
	K := cg * p.KH * p.KW
	n := q1 - q0
	npad := roundUp(n, nr)
	OW := p.OutW()
	plane := p.H * p.W
	pw := p.pointwise()
	var segs [nr]segment
	for jp := 0; jp < npad; jp += nr {
		valid := min(nr, n-jp)
		ns := 0
		for j := 0; j < valid; {
			q := q0 + jp + j
			oh, ow := q/OW, q%OW
			l := min(OW-ow, valid-j)
			segs[ns] = segment{oh, ow, j, l}
			ns++
			j += l
		}
		r := 0
		for c := 0; c < cg; c++ {
			xc := xg[c*plane : (c+1)*plane]
			for kh := 0; kh < p.KH; kh++ {
				for kw := 0; kw < p.KW; kw++ {
					pc := r / kcBlock * kcBlock
					kcur := min(kcBlock, K-pc)
					d := dst[pc*npad+jp*kcur+(r-pc)*nr:][:nr:nr]
					r++
					if valid < nr {
						clear(d[valid:])
					}
					if pw {
						src := xc[q0+jp : q0+jp+valid]
						copy(d, src)
						continue
					}
					for _, sg := range segs[:ns] {
						dd := d[sg.j : sg.j+sg.l]
						ih := sg.oh*p.StrideH - p.PadT + kh*p.DilH
						if ih < 0 || ih >= p.H {
							clear(dd)
							continue
						}
						row := xc[ih*p.W : (ih+1)*p.W]
						iw := sg.ow*p.StrideW - p.PadL + kw*p.DilW
						if iw >= 0 && iw+(sg.l-1)*p.StrideW < p.W {
							if p.StrideW == 1 {
								src := row[iw : iw+len(dd)]
								for i := range dd {
									dd[i] = src[i]
								}
								continue
							}
							for i := range dd {
								dd[i] = row[iw]
								iw += p.StrideW
							}
							continue
						}
						for i := range dd {
							if iw >= 0 && iw < p.W {
								dd[i] = row[iw]
							} else {
								dd[i] = 0
							}
							iw += p.StrideW
						}
					}
				}
			}
		}
	}
}

// Conv2DInputGrad computes gx = ∂/∂x Σ gy·conv(x, w), the gradient of a
// convolution with respect to its input, given the output gradient gy
// (N×M×OutH()×OutW()). gx (N×C×H×W) is caller-allocated and fully
// overwritten. It is a GEMM of the transposed weights by gy followed by
// col2im, split over the batch or inside the GEMM; for stride 1 and wide
// rows it is run as a convolution of gy instead (see conv2DInputGrad).
func Conv2DInputGrad(p ConvParams, w, gy, gx []float32) {
	conv2DInputGrad(p, w, gy, gx, 0)
}

// conv2DInputGrad is Conv2DInputGrad on up to workers goroutines (0:
// automatic).
func conv2DInputGrad(p ConvParams, w, gy, gx []float32, workers int) {
	conv2DInputGradWith(p, w, nil, gy, gx, workers)
}

// conv2DInputGradWith is conv2DInputGrad reading, when not nil and the
// gradient runs by Winograd's algorithm, the weights already transformed
// in u (see WinogradWeights with grad).
func conv2DInputGradWith(p ConvParams, w, u, gy, gx []float32, workers int) {
	p = p.norm()
	p.check(len(gx), len(w), len(gy), "gx", "w", "gy")
	if q, ok := p.transposed(); ok && useWinograd(q) {
		winoInputGrad(p, w, u, gy, gx, workers)
		return
	}
	// With stride 1 the input gradient is itself a convolution: of gy
	// with the weights flipped and their channel axes swapped, padded so
	// that the output is H×W. Run as one (conv2DDirect) it needs no
	// col2im, but it costs a transposed copy of the weights, and its
	// output rows of W are cut into panels. Measured: 158 against 145
	// GFLOP/s for resnet18's 3×3 64→64 56×56 layer at batch 10, 105
	// against 145 for the 128→128 28×28 one (rows of 16+12).
	if q, ok := p.transposed(); ok && rowEfficiency(p.W) >= 0.95 && 2*p.M <= p.N*p.OutH()*p.OutW() {
		cg, mg := p.C/p.Group, p.M/p.Group
		kk := p.KH * p.KW
		wtBuf := getBuf(len(w[:p.M*cg*kk]))
		wt := *wtBuf
		for g := 0; g < p.Group; g++ {
			for c := 0; c < cg; c++ {
				for m := 0; m < mg; m++ {
					src := w[((g*mg+m)*cg+c)*kk:][:kk]
					dst := wt[((g*cg+c)*mg+m)*kk:][:kk]
					for i, v := range src {
						dst[kk-1-i] = v
					}
				}
			}
		}
		conv2D(q, gy, wt, nil, gx, workers)
		putBuf(wtBuf)
		return
	}
	if !p.pointwise() {
		inputGradChunked(p, w, gy, gx, workers)
		return
	}
	OH, OW := p.OutH(), p.OutW()
	P := OH * OW
	cg, mg := p.C/p.Group, p.M/p.Group
	K := cg * p.KH * p.KW
	inPlane := p.H * p.W
	pw := p.pointwise()
	batch, threads := batchWorkers(p.N, p.M*K*P, workers)
	par.Range(p.N, 1, batch, func(lo, hi int) {
		var colsBuf *[]float32
		var cols []float32
		if !pw {
			colsBuf = getBuf(K * P)
			cols = *colsBuf
		}
		for n := lo; n < hi; n++ {
			for g := 0; g < p.Group; g++ {
				gxg := gx[(n*p.C+g*cg)*inPlane : (n*p.C+(g+1)*cg)*inPlane]
				gyg := gy[(n*p.M+g*mg)*P : (n*p.M+(g+1)*mg)*P]
				wg := w[g*mg*K : (g+1)*mg*K]
				if pw {
					gemm(threads, true, false, K, P, mg, 1, wg, K, gyg, P, 0, gxg, P)
					continue
				}
				gemm(threads, true, false, K, P, mg, 1, wg, K, gyg, P, 0, cols, P)
				col2im(p, cols, gxg, threads)
			}
		}
		putBuf(colsBuf)
	})
}

// inputGradChunked is Conv2DInputGrad as GEMMs of the transposed weights
// by blocks of rows of gy, each followed at once by the col2im of its
// result while that is in cache. A block of output rows [oh0, oh1)
// writes input rows up to (KH-1)·DilH/StrideH below the next block's
// first, so blocks are made at least that tall and run in two rounds,
// even blocks then odd, so that no two running at once write the same
// input rows. When there are few blocks the input channels are split
// into bands too; bands write disjoint channels.
func inputGradChunked(p ConvParams, w, gy, gx []float32, workers int) {
	OH, OW := p.OutH(), p.OutW()
	P := OH * OW
	cg, mg := p.C/p.Group, p.M/p.Group
	kk := p.KH * p.KW
	K := cg * kk
	inPlane := p.H * p.W
	images := p.N * p.Group
	if images == 0 {
		return
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
		if images*mg*K*P < convGrain {
			workers = 1
		}
	}
	// Block height: tall enough for the two rounds, and about 64 Ki
	// floats of col2im input per block.
	minRows := ((p.KH-1)*p.DilH + p.StrideH) / p.StrideH
	rows := max(minRows, (1<<16)/max(1, min(K, kcBlock)*OW))
	blocks := (OH + rows - 1) / rows
	// Channel bands: enough tasks per round for the workers.
	perRound := images * ((blocks + 1) / 2)
	bands := 1
	if perRound < 2*workers {
		bands = min(cg, (2*workers+perRound-1)/perRound)
	}
	maxCh := (cg + bands - 1) / bands
	par.For(len(gx[:p.N*p.C*inPlane]), 1<<16, func(lo, hi int) { clear(gx[lo:hi]) })
	for round := 0; round < 2; round++ {
		nb := (blocks - round + 1) / 2 // blocks of this parity
		par.Tasks(images*nb*bands, workers, func(_ int, q *par.Queue) {
			var buf *[]float32
			for t := q.Next(-1); t >= 0; t = q.Next(t) {
				if buf == nil {
					buf = getBuf(maxCh * kk * rows * OW)
				}
				band := t % bands
				blk := 2*(t/bands%nb) + round
				im := t / (bands * nb)
				n, g := im/p.Group, im%p.Group
				oh0, oh1 := blk*rows, min((blk+1)*rows, OH)
				c0, c1 := band*cg/bands, (band+1)*cg/bands
				if c0 >= c1 {
					continue
				}
				cols := (oh1 - oh0) * OW
				r0, r1 := c0*kk, c1*kk
				// cols block = W^T[r0:r1, :] · gy[:, oh0*OW : oh1*OW].
				op := gemmOp{transA: true, m: r1 - r0, n: cols, k: mg, alpha: 1,
					a: w[g*mg*K+r0 : (g+1)*mg*K], lda: K,
					b: gy[(n*p.M+g*mg)*P+oh0*OW : (n*p.M+(g+1)*mg)*P], ldb: P,
					c: *buf, ldc: cols}
				op.run(0, r1-r0, 0, cols, nil, nil)
				gxg := gx[(n*p.C+g*cg)*inPlane : (n*p.C+(g+1)*cg)*inPlane]
				col2imBlock(p, *buf, gxg, c0, c1, oh0, oh1)
			}
			if buf != nil {
				putBuf(buf)
			}
		})
	}
}

// col2imBlock adds into gxg (C/Group planes of H×W) the entries of cols
// (rows (c-c0)·KH·KW + kh·KW + kw for channels [c0, c1), columns the
// output positions of output rows [oh0, oh1)) at the input elements that
// read them.
func col2imBlock(p ConvParams, cols, gxg []float32, c0, c1, oh0, oh1 int) {
	OW := p.OutW()
	kk := p.KH * p.KW
	n := (oh1 - oh0) * OW
	for c := c0; c < c1; c++ {
		plane := gxg[c*p.H*p.W : (c+1)*p.H*p.W]
		for k := 0; k < kk; k++ {
			kh, kw := k/p.KW, k%p.KW
			src := cols[((c-c0)*kk+k)*n : ((c-c0)*kk+k+1)*n]
			offW := kw*p.DilW - p.PadL
			owLo, owHi := colRange(offW, p.StrideW, p.W, OW)
			if owLo >= owHi {
				continue
			}
			for oh := oh0; oh < oh1; oh++ {
				ih := oh*p.StrideH - p.PadT + kh*p.DilH
				if ih < 0 || ih >= p.H {
					continue
				}
				addRow(plane[ih*p.W:(ih+1)*p.W], src[(oh-oh0)*OW:(oh-oh0+1)*OW], owLo, owHi, offW, p.StrideW)
			}
		}
	}
}

// Conv2DWeightGrad computes gw = ∂/∂w Σ gy·conv(x, w), the gradient of a
// convolution with respect to its weight (M×(C/Group)×KH×KW), given the
// input x and the output gradient gy. gw is caller-allocated and fully
// overwritten. It sums over the images GEMMs of gy by the transposed
// im2col matrix, split over the batch (with per-goroutine partial sums)
// or inside the GEMM.
func Conv2DWeightGrad(p ConvParams, x, gy, gw []float32) {
	conv2DWeightGrad(p, x, gy, gw, 0)
}

// conv2DWeightGrad is Conv2DWeightGrad on up to workers goroutines (0:
// automatic).
func conv2DWeightGrad(p ConvParams, x, gy, gw []float32, workers int) {
	p = p.norm()
	p.check(len(x), len(gw), len(gy), "x", "gw", "gy")
	OH, OW := p.OutH(), p.OutW()
	P := OH * OW
	cg, mg := p.C/p.Group, p.M/p.Group
	K := cg * p.KH * p.KW
	inPlane := p.H * p.W
	pw := p.pointwise()
	nw := p.M * K
	batch, threads := batchWorkers(p.N, p.M*K*P, workers)
	// Worker i accumulates the images it takes into part i (part 0 is gw
	// itself); the parts are summed at the end.
	var partsBuf *[]float32
	var parts []float32
	if batch > 1 {
		partsBuf = getBuf((batch - 1) * nw)
		parts = *partsBuf
	}
	used := make([]bool, batch)
	par.Tasks(p.N, batch, func(i int, q *par.Queue) {
		var colsBuf *[]float32
		for n := q.Next(-1); n >= 0; n = q.Next(n) {
			acc := gw[:nw]
			if i > 0 {
				acc = parts[(i-1)*nw : i*nw]
			}
			beta := float32(1)
			if !used[i] {
				beta = 0
				used[i] = true
			}
			if !pw && colsBuf == nil {
				colsBuf = getBuf(K * P)
			}
			for g := 0; g < p.Group; g++ {
				xg := x[(n*p.C+g*cg)*inPlane : (n*p.C+(g+1)*cg)*inPlane]
				gyg := gy[(n*p.M+g*mg)*P : (n*p.M+(g+1)*mg)*P]
				b := xg
				if !pw {
					im2col(p, xg, *colsBuf, threads)
					b = *colsBuf
				}
				gemm(threads, false, true, mg, K, P, 1, gyg, P, b, P, beta, acc[g*mg*K:(g+1)*mg*K], K)
			}
		}
		if colsBuf != nil {
			putBuf(colsBuf)
		}
	})
	if !used[0] {
		clear(gw[:nw])
	}
	for i := 1; i < batch; i++ {
		if used[i] {
			part := parts[(i-1)*nw : i*nw]
			for j, v := range part {
				gw[j] += v
			}
		}
	}
	putBuf(partsBuf)
}

func fill(x []float32, v float32) {
	for i := range x {
		x[i] = v
	}
}

// colRange returns the range [lo, hi) of output positions o in [0, out)
// whose input coordinate o*stride + off falls inside [0, size).
func colRange(off, stride, size, out int) (lo, hi int) {
	// o*stride + off >= 0  <=>  o >= ceil(-off/stride)
	if off < 0 {
		lo = (-off + stride - 1) / stride
	}
	// o*stride + off <= size-1  <=>  o <= floor((size-1-off)/stride)
	if size-1-off < 0 {
		return lo, lo
	}
	hi = min(out, (size-1-off)/stride+1)
	if hi < lo {
		hi = lo
	}
	return lo, hi
}

// addRow is col2im for one input row d and one row s of the patch matrix
// (one output row, for one channel and tap): it adds s[ow] into
// d[ow*stride + offW] for the output columns ow in [owLo, owHi) (see
// colRange).
func addRow(d, s []float32, owLo, owHi, offW, stride int) {
	if stride == 1 {
		d = d[owLo+offW : owHi+offW]
		s = s[owLo:owHi]
		for i, v := range s {
			d[i] += v
		}
		return
	}
	iw := owLo*stride + offW
	for ow := owLo; ow < owHi; ow++ {
		d[iw] += s[ow]
		iw += stride
	}
}

// im2col writes the (C/Group·KH·KW)×(OH·OW) patch matrix of one image
// group xg (C/Group planes of H×W) into cols. threads 1 keeps it on the
// calling goroutine.
func im2col(p ConvParams, xg, cols []float32, threads int) {
	OH, OW := p.OutH(), p.OutW()
	P := OH * OW
	kk := p.KH * p.KW
	rows := (p.C / p.Group) * kk
	par.Range(rows, copyChunk(threads, P), copyWorkers(threads, rows*P), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			c, kh, kw := r/kk, r%kk/p.KW, r%p.KW
			plane := xg[c*p.H*p.W : (c+1)*p.H*p.W]
			dst := cols[r*P : (r+1)*P]
			offW := kw*p.DilW - p.PadL
			owLo, owHi := colRange(offW, p.StrideW, p.W, OW)
			for oh := 0; oh < OH; oh++ {
				d := dst[oh*OW : (oh+1)*OW]
				ih := oh*p.StrideH - p.PadT + kh*p.DilH
				if ih < 0 || ih >= p.H {
					clear(d)
					continue
				}
				src := plane[ih*p.W : (ih+1)*p.W]
				clear(d[:owLo])
				clear(d[owHi:])
				if p.StrideW == 1 {
					copy(d[owLo:owHi], src[owLo+offW:])
					continue
				}
				iw := owLo*p.StrideW + offW
				for ow := owLo; ow < owHi; ow++ {
					d[ow] = src[iw]
					iw += p.StrideW
				}
			}
		}
	})
}

// col2im is the adjoint of im2col: it overwrites gxg (C/Group planes of
// H×W) with the sums of the patch-matrix entries of cols that read each
// input element. Channels and rows of the input are independent, so it
// splits over blocks of them.
func col2im(p ConvParams, cols, gxg []float32, threads int) {
	OH, OW := p.OutH(), p.OutW()
	P := OH * OW
	kk := p.KH * p.KW
	cg := p.C / p.Group
	workers := copyWorkers(threads, cg*kk*P)
	// Blocks of input rows: enough tasks for a few per goroutine.
	rowBlocks := 1
	if workers > 1 {
		rowBlocks = min(p.H, max(1, (4*workers+cg-1)/cg))
	}
	par.Range(cg*rowBlocks, copyChunk(threads, kk*P/rowBlocks), workers, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			c, rb := t/rowBlocks, t%rowBlocks
			h0, h1 := rb*p.H/rowBlocks, (rb+1)*p.H/rowBlocks
			plane := gxg[c*p.H*p.W : (c+1)*p.H*p.W]
			clear(plane[h0*p.W : h1*p.W])
			for k := 0; k < kk; k++ {
				kh, kw := k/p.KW, k%p.KW
				src := cols[(c*kk+k)*P : (c*kk+k+1)*P]
				offW := kw*p.DilW - p.PadL
				owLo, owHi := colRange(offW, p.StrideW, p.W, OW)
				if owLo >= owHi {
					continue
				}
				// Output rows oh whose input row falls in [h0, h1).
				ohLo, ohHi := colRange(kh*p.DilH-p.PadT-h0, p.StrideH, h1-h0, OH)
				for oh := ohLo; oh < ohHi; oh++ {
					ih := oh*p.StrideH - p.PadT + kh*p.DilH
					addRow(plane[ih*p.W:(ih+1)*p.W], src[oh*OW:(oh+1)*OW], owLo, owHi, offW, p.StrideW)
				}
			}
		}
	})
}
