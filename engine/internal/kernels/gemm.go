package kernels

import (
	"runtime"

	"github.com/loupe-ml/loupe/internal/par"
)

// The blocked GEMM below computes C in mr×nr tiles with a register-
// blocked micro-kernel (assembly on amd64 with AVX2+FMA, Go elsewhere).
// The micro-kernel reads op(B) packed into kc×nr panels (a kc×nc block of
// packed B stays in L2, one panel in L1), and reads op(A) where it lies,
// through a row stride rs and a column stride cs, so that A is never
// copied: for A as stored rs = lda and cs = 1, for A^T rs = 1 and cs = lda.
// Only a last partial panel of fewer than mr rows is copied, zero-padded,
// into a small buffer. Not packing A matters for convolutions, whose A is
// the weight matrix: packing it would cost a pass over all the weights on
// every call, a third of the run time of resnet18's last layers.
const (
	mr      = 6    // micro-tile rows
	nr      = 16   // micro-tile columns
	kcBlock = 256  // depth of a block
	mcBlock = 144  // rows of an A block (multiple of mr)
	ncBlock = 3072 // columns of a packed B block (multiple of nr)
)

// parallelMACs is the number of multiply-adds (m·n·k) from which a GEMM
// is split across goroutines. Measured on the development machine, where
// waking an idle core takes ~175 µs: 64×3136×64 (12.8 M) runs at 96
// GFLOP/s on one goroutine and 122 on two, 64×784×128 (6.4 M) at 103 and
// 97, 64×64×64 at 96 and 76. The split is dynamic, so below break-even it
// costs little; on machines that wake cores faster it pays off sooner.
const parallelMACs = 1 << 23

// unpackedBRows is the number of rows of C up to which B (as stored, not
// transposed) is read in place rather than packed: a panel of B is then
// used by too few rows to pay for copying it. Measured: 64×12544×147 runs
// at 176 GFLOP/s reading B in place, 141 packing it; 1024×1024×1024 at
// 127 in place, 203 packed.
const unpackedBRows = 320

// gemmOp holds the operands of one GEMM, C = alpha*op(A)*op(B) + beta*C.
type gemmOp struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	a, b, c        []float32
	lda, ldb, ldc  int
}

// blocked computes C = alpha*op(A)*op(B) + beta*C with the micro-kernel
// GEMM on up to threads goroutines (0: automatic, GOMAXPROCS from
// parallelMACs on). Arguments are assumed valid and m, n, k > 0.
func blocked(threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	op := gemmOp{transA, transB, m, n, k, alpha, beta, a, b, c, lda, ldb, ldc}
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
		if m*n*k < parallelMACs {
			threads = 1
		}
	}
	mp, np := (m+mr-1)/mr, (n+nr-1)/nr
	// Goroutines take bands of C. Column bands share A, which is read in
	// place; row bands share B, which is packed once for all of them.
	// Split along the longer side of C.
	byCols := n >= m && np >= 2 || mp < 2
	panels := mp
	if byCols {
		panels = np
	}
	t := min(threads, panels)
	if t <= 1 {
		op.run(0, m, 0, n, nil, nil)
		return
	}
	// A few bands per goroutine, taken dynamically (see package par).
	per := max(1, panels/(4*t)) // panels per band
	if byCols {
		par.Range(np, per, t, func(lo, hi int) {
			op.run(0, m, lo*nr, min(hi*nr, n), nil, nil)
		})
		return
	}
	if !transB && per*mr <= unpackedBRows {
		// Each band reads B in place.
		par.Range(mp, per, t, func(lo, hi int) {
			op.run(lo*mr, min(hi*mr, m), 0, n, nil, nil)
		})
		return
	}
	bufB := getBuf(roundUp(n, nr) * k)
	packBAll(*bufB, transB, b, ldb, n, k, t)
	par.Range(mp, per, t, func(lo, hi int) {
		op.run(lo*mr, min(hi*mr, m), 0, n, *bufB, nil)
	})
	putBuf(bufB)
}

// aView returns op(A) from row i, depth p on as a slice with its row and
// column strides.
func (op *gemmOp) aView(i, p int) (a []float32, rs, cs int) {
	if op.transA {
		return op.a[p*op.lda+i:], 1, op.lda
	}
	return op.a[i*op.lda+p:], op.lda, 1
}

// run computes rows [i0, i1) and columns [j0, j1) of C on the calling
// goroutine. pb, if not nil, is all of op(B) packed by packBAll (j0 must
// then be a multiple of nr); else B is packed here block by block. bias,
// if not nil, holds a value per row of C added to it.
func (op *gemmOp) run(i0, i1, j0, j1 int, pb, bias []float32) {
	k := op.k
	npad := roundUp(op.n, nr)
	ncStep := ncBlock
	var bufB *[]float32
	switch {
	case pb != nil:
		ncStep = j1 - j0
	case !op.transB && i1-i0 <= unpackedBRows:
		// Few rows of C: each panel of B is used too few times to pay
		// for copying it; read B in place.
	default:
		bufB = getBuf(min(roundUp(j1-j0, nr), ncBlock) * min(k, kcBlock))
	}
	for jc := j0; jc < j1; jc += ncStep {
		ncur := min(ncStep, j1-jc)
		for pc := 0; pc < k; pc += kcBlock {
			kcur := min(kcBlock, k-pc)
			var bblk []float32
			bs := 0
			switch {
			case pb != nil:
				bblk = pb[pc*npad+jc*kcur:]
			case bufB == nil:
				bblk, bs = op.b[pc*op.ldb+jc:], op.ldb
			default:
				bblk = *bufB
				packB(bblk, op.transB, op.b, op.ldb, pc, jc, kcur, ncur)
			}
			beta, bv := op.beta, bias
			if pc > 0 {
				beta, bv = 1, nil
			}
			for ic := i0; ic < i1; ic += mcBlock {
				mcur := min(mcBlock, i1-ic)
				a, rs, cs := op.aView(ic, pc)
				var bsi []float32
				if bv != nil {
					bsi = bv[ic:]
				}
				macroKernel(kcur, mcur, ncur, a, rs, cs, bblk, bs, op.alpha, beta, bsi, op.c[ic*op.ldc+jc:], op.ldc)
			}
		}
	}
	putBuf(bufB)
}

// packGrain is the number of floats below which packing a whole operand
// stays on one goroutine.
const packGrain = 1 << 15

// packBAll packs all of op(B) (k×n) into dst (k·roundUp(n,nr) floats):
// depth block pc (a multiple of kcBlock) starts at pc·roundUp(n,nr), and
// within it the nr-column panel of columns jr.. at jr·kcur. The work is
// split over up to threads goroutines.
func packBAll(dst []float32, transB bool, b []float32, ldb, n, k int, threads int) {
	npad, np, kb := roundUp(n, nr), (n+nr-1)/nr, (k+kcBlock-1)/kcBlock
	units := np * kb
	grain := units
	if threads != 1 && n*k >= packGrain {
		grain = max(1, units/(4*max(threads, runtime.GOMAXPROCS(0))))
	}
	par.For(units, grain, func(lo, hi int) {
		for u := lo; u < hi; u++ {
			pc, jr := u/np*kcBlock, u%np*nr
			kcur := min(kcBlock, k-pc)
			packB(dst[pc*npad+jr*kcur:], transB, b, ldb, pc, jr, kcur, min(nr, n-jr))
		}
	})
}

func roundUp(x, to int) int { return (x + to - 1) / to * to }

// macroKernel computes C = alpha*A·B + beta*C + bias for an mcur×kcur
// block of A (a, read through strides rs and cs), a kcur×ncur block of B
// and an mcur×ncur block of C (c, row stride ldc). B is packed (bs = 0:
// panels of nr columns, each kcur×nr, one after the other) or read in
// place (bs = its row stride; a last partial panel is copied). bias holds
// mcur row values or is nil.
func macroKernel(kcur, mcur, ncur int, a []float32, rs, cs int, bp []float32, bs int, alpha, beta float32, bias []float32, c []float32, ldc int) {
	full := mcur / mr * mr
	// The last partial panel of A is copied, zero-padded to mr rows.
	var edge *[]float32
	var edgeBias [mr]float32
	var ea []float32
	if full < mcur {
		edge = getBuf(mr * kcur)
		ea = *edge
		clear(ea)
		for r := 0; r < mcur-full; r++ {
			for p := 0; p < kcur; p++ {
				ea[p*mr+r] = a[(full+r)*rs+p*cs]
			}
		}
		if bias != nil {
			copy(edgeBias[:], bias[full:mcur])
		}
	}
	last := (mr-1)*rs + (kcur-1)*cs // offset of a panel's last element
	var bedge *[]float32
	for jr := 0; jr < ncur; jr += nr {
		nrr := min(nr, ncur-jr)
		var bpan []float32
		pbs := nr
		switch {
		case bs == 0:
			bpan = bp[jr*kcur : (jr+nr)*kcur]
		case nrr == nr:
			bpan, pbs = bp[jr:jr+(kcur-1)*bs+nr], bs
		default:
			bedge = getBuf(kcur * nr)
			bpan = *bedge
			for p := 0; p < kcur; p++ {
				row := bpan[p*nr : (p+1)*nr]
				copy(row, bp[p*bs+jr:p*bs+jr+nrr])
				clear(row[nrr:])
			}
		}
		for ir := 0; ir < mcur; ir += mr {
			ap, prs, pcs := a[ir*rs:], rs, cs
			var bsp []float32
			if ir == full {
				ap, prs, pcs = ea, 1, mr
				if bias != nil {
					bsp = edgeBias[:]
				}
			} else {
				ap = ap[:last+1]
				if bias != nil {
					bsp = bias[ir : ir+mr]
				}
			}
			if ir < full && nrr == nr {
				ct := c[ir*ldc+jr : (ir+mr-1)*ldc+jr+nr]
				microKernel(kcur, ap, prs, pcs, bpan, pbs, ct, ldc, alpha, beta, bsp)
				continue
			}
			// Partial tile: compute it whole into a buffer, keep the part
			// inside C.
			var tile [mr * nr]float32
			if nrr <= nr/2 {
				microKernelHalf(kcur, ap, prs, pcs, bpan, pbs, tile[:], nr, alpha, 0, bsp)
			} else {
				microKernel(kcur, ap, prs, pcs, bpan, pbs, tile[:], nr, alpha, 0, bsp)
			}
			storeTile(c[ir*ldc+jr:], ldc, &tile, min(mr, mcur-ir), nrr, beta)
		}
	}
	putBuf(edge)
	putBuf(bedge)
}

// storeTile sets the top-left rows×cols corner of C (c, row stride ldc)
// to that of a micro-kernel tile computed aside, plus beta times C: how a
// partial tile at the edge of C is kept.
func storeTile(c []float32, ldc int, tile *[mr * nr]float32, rows, cols int, beta float32) {
	for r := 0; r < rows; r++ {
		crow := c[r*ldc : r*ldc+cols]
		trow := tile[r*nr : r*nr+cols]
		if beta == 0 {
			copy(crow, trow)
			continue
		}
		for j, v := range trow {
			crow[j] = v + beta*crow[j]
		}
	}
}

// packB copies op(B)[pc:pc+kcur, jc:jc+ncur] into dst as consecutive
// kcur×nr panels (row p of a panel holds its nr columns at depth p),
// padding the last panel with zero columns.
func packB(dst []float32, transB bool, b []float32, ldb, pc, jc, kcur, ncur int) {
	for jr := 0; jr < ncur; jr += nr {
		d := dst[jr*kcur : (jr+nr)*kcur]
		w := min(nr, ncur-jr)
		if !transB {
			if w == nr {
				for p := 0; p < kcur; p++ {
					o := (pc+p)*ldb + jc + jr
					*(*[nr]float32)(d[p*nr:]) = *(*[nr]float32)(b[o : o+nr])
				}
				continue
			}
			for p := 0; p < kcur; p++ {
				o := (pc+p)*ldb + jc + jr
				row := d[p*nr : (p+1)*nr]
				copy(row, b[o:o+w])
				clear(row[w:])
			}
			continue
		}
		// op(B) = B^T: column j of op(B) is row j of B.
		for col := 0; col < w; col++ {
			o := (jc+jr+col)*ldb + pc
			src := b[o : o+kcur]
			for p, v := range src {
				d[p*nr+col] = v
			}
		}
		if w < nr {
			for p := 0; p < kcur; p++ {
				clear(d[p*nr+w : (p+1)*nr])
			}
		}
	}
}

// microKernelGo is the portable micro-kernel: for the mr×nr tile C (row
// stride ldc) it computes C = alpha*A·B + beta*C + bias, where A(r, p) =
// a[r*rs+p*cs], B(p, j) = bp[p*bs+j] and bias holds mr row values or is
// nil. With beta 0, C is not read. It works in 2×4 sub-tiles whose eight
// sums stay in registers.
func microKernelGo(kc int, a []float32, rs, cs int, bp []float32, bs int, c []float32, ldc int, alpha, beta float32, bias []float32) {
	bp = bp[:(kc-1)*bs+nr]
	_ = a[(mr-1)*rs+(kc-1)*cs]
	for r := 0; r < mr; r += 2 {
		for j := 0; j < nr; j += 4 {
			var s00, s01, s02, s03, s10, s11, s12, s13 float32
			o0, o1 := r*rs, (r+1)*rs
			for p := j; p < len(bp); p += bs {
				b := bp[p : p+4 : p+4]
				a0, a1 := a[o0], a[o1]
				s00 += a0 * b[0]
				s01 += a0 * b[1]
				s02 += a0 * b[2]
				s03 += a0 * b[3]
				s10 += a1 * b[0]
				s11 += a1 * b[1]
				s12 += a1 * b[2]
				s13 += a1 * b[3]
				o0 += cs
				o1 += cs
			}
			storeRow4(c[r*ldc+j:], s00, s01, s02, s03, alpha, beta, bias, r)
			storeRow4(c[(r+1)*ldc+j:], s10, s11, s12, s13, alpha, beta, bias, r+1)
		}
	}
}

// storeRow4 sets c[0:4] = alpha*s + beta*c + bias[r] (c not read when
// beta is 0; bias may be nil).
func storeRow4(c []float32, s0, s1, s2, s3, alpha, beta float32, bias []float32, r int) {
	c = c[:4:4]
	var bv float32
	if bias != nil {
		bv = bias[r]
	}
	s0, s1, s2, s3 = alpha*s0+bv, alpha*s1+bv, alpha*s2+bv, alpha*s3+bv
	if beta != 0 {
		s0 += beta * c[0]
		s1 += beta * c[1]
		s2 += beta * c[2]
		s3 += beta * c[3]
	}
	c[0], c[1], c[2], c[3] = s0, s1, s2, s3
}

// microKernelIdxGo is the portable microKernelIdx: it gathers the rows of
// B into a packed panel and runs microKernelGo.
func microKernelIdxGo(half bool, kc int, a []float32, rs, cs int, b []float32, offs []int32, c []float32, ldc int, alpha, beta float32, bias []float32) {
	w := nr
	if half {
		w = nr / 2
	}
	buf := getBuf(kc * nr)
	bp := *buf
	for p, o := range offs[:kc] {
		copy(bp[p*nr:p*nr+w], b[int(o):int(o)+w])
	}
	if !half {
		microKernelGo(kc, a, rs, cs, bp, nr, c, ldc, alpha, beta, bias)
	} else {
		var tile [mr * nr]float32
		for r := 0; r < mr; r++ {
			copy(tile[r*nr:r*nr+w], c[r*ldc:r*ldc+w])
		}
		microKernelGo(kc, a, rs, cs, bp, nr, tile[:], nr, alpha, beta, bias)
		for r := 0; r < mr; r++ {
			copy(c[r*ldc:r*ldc+w], tile[r*nr:r*nr+w])
		}
	}
	putBuf(buf)
}
