package main

import (
	"errors"
	"fmt"
)

// vecISA describes a SIMD register file the micro-kernels can be written
// for. Everything a kernel does with vector registers goes through it, so
// a kernel for another register width differs only in this value.
type vecISA struct {
	name  string // suffix of the kernel names: "AVX2"
	reg   string // register prefix in Go assembly: "Y" (YMM), "Z" (ZMM)
	bytes int    // bytes in one vector register
	regs  int    // vector registers there are: 16, or 32 with AVX-512
	zero  string // instruction zeroing a register, as "OP R, R, R"
}

// avx2 is AVX2 with FMA3: 16 YMM registers of 8 float32.
var avx2 = vecISA{name: "AVX2", reg: "Y", bytes: 32, regs: 16, zero: "VXORPS"}

// lanes is the number of float32 values in one register.
func (v vecISA) lanes() int { return v.bytes / 4 }

// r names vector register i.
func (v vecISA) r(i int) string { return fmt.Sprintf("%s%d", v.reg, i) }

// bMode is how a micro-kernel finds row p of B.
type bMode int

const (
	packedB  bMode = iota // B(p, j) = b[p*bs + j]; AX = bs in bytes
	indexedB              // B(p, j) = b[offs[p] + j]; AX walks offs
)

// unroll is how many depth steps one pass of the main loop does; a power
// of two. The remaining k mod unroll steps run one at a time.
const unroll = 4

// rowBases are the general-purpose registers that address A: rows 3g,
// 3g+1 and 3g+2 are read at (rowBases[g]), (rowBases[g])(R8*1) and
// (rowBases[g])(R8*2), where R8 = rs in bytes. SI is loaded from a and
// each later base is the one before plus 3*rs; all advance by cs a step.
// Only the first two are used by six-row kernels. R14 and R15 are
// scratch in these ABI0 functions (they touch no globals, so R15 is safe
// in dynamically linked builds too).
var rowBases = []string{"SI", "R11", "R14", "R15"}

// The general-purpose registers every micro-kernel uses besides rowBases:
// CX counts depth steps (R9 the unrolled passes), DI is b, AX is bs or
// walks offs, BX holds the offset read from offs (and later bias), DX is
// c, R13 is ldc in bytes and R10 walks C's rows while beta*C is added.

// kernel is one GEMM micro-kernel: C (rows × vecs*lanes) = alpha*A·B +
// beta*C + bias over k >= 1 depth steps, with the Go signature
//
//	func name(k int, a *float32, rs, cs int, b *float32, bs int, c *float32, ldc int, bias *float32, alpha, beta float32)
//
// (offs *int32 in place of bs int when B is indexed).
//
// Vector registers: row p of B is loaded into registers 0..vecs-1; A
// values are broadcast alternately into the two registers after those
// (at least 2 and 3); the accumulators follow, vecs of them per row in
// row order. Registers 0 and 1 hold alpha or beta and a bias value once
// the depth loop is over.
type kernel struct {
	isa  vecISA
	rows int   // rows of the tile (mr), a multiple of 3
	vecs int   // vector registers per row of the tile
	b    bMode // how B is read
}

// width is the number of columns of the tile (nr).
func (k kernel) width() int { return k.vecs * k.isa.lanes() }

// name is the name of the Go function.
func (k kernel) name() string {
	idx := ""
	if k.b == indexedB {
		idx = "Idx"
	}
	return fmt.Sprintf("sgemm%dx%d%s%s", k.rows, k.width(), idx, k.isa.name)
}

// suffix ends the kernel's labels. Labels are local to a TEXT block in
// Go assembly, so it only has to read well.
func (k kernel) suffix() string {
	s := fmt.Sprint(k.width())
	if k.b == indexedB {
		s += "i"
	}
	return s
}

// bcast is the first of the two broadcast registers.
func (k kernel) bcast() int { return max(k.vecs, 2) }

// acc is the accumulator of row r, vector j of the tile.
func (k kernel) acc(r, j int) string {
	return k.isa.r(k.bcast() + 2 + r*k.vecs + j)
}

// check reports a kernel whose plan does not fit.
func (k kernel) check() error {
	switch {
	case k.isa.bytes <= 0 || k.isa.bytes%4 != 0 || k.isa.reg == "" || k.isa.zero == "":
		return fmt.Errorf("%s: incomplete vector ISA %+v", k.name(), k.isa)
	case k.rows <= 0 || k.rows%3 != 0:
		return fmt.Errorf("%s: rows must be a positive multiple of 3", k.name())
	case k.rows/3 > len(rowBases):
		return fmt.Errorf("%s: more than %d rows need more base registers", k.name(), 3*len(rowBases))
	case k.vecs <= 0:
		return fmt.Errorf("%s: vecs must be positive", k.name())
	case k.bcast()+2+k.rows*k.vecs > k.isa.regs:
		return fmt.Errorf("%s: %d accumulators do not fit in %d registers", k.name(), k.rows*k.vecs, k.isa.regs)
	case k.b != packedB && k.b != indexedB:
		return errors.New("unknown B mode")
	}
	return nil
}

// emit writes the kernel's TEXT block, starting with its signature.
func (k kernel) emit(w *writer) {
	v, s := k.isa, k.suffix()
	bArg := "bs int"
	if k.b == indexedB {
		bArg = "offs *int32"
	}
	w.text(fmt.Sprintf("// func %s(k int, a *float32, rs, cs int, b *float32, %s, c *float32, ldc int, bias *float32, alpha, beta float32)\n", k.name(), bArg))
	w.text(fmt.Sprintf("TEXT ·%s(SB), NOSPLIT, $0-80\n", k.name()))

	// Arguments; strides become bytes.
	w.ins("MOVQ k+0(FP), CX")
	w.ins("MOVQ a+8(FP), SI")
	w.ins("MOVQ rs+16(FP), R8")
	w.ins("SHLQ $2, R8")
	w.ins("MOVQ cs+24(FP), R12")
	w.ins("SHLQ $2, R12")
	w.ins("MOVQ b+32(FP), DI")
	if k.b == packedB {
		w.ins("MOVQ bs+40(FP), AX")
		w.ins("SHLQ $2, AX")
	} else {
		w.ins("MOVQ offs+40(FP), AX")
	}
	w.ins("MOVQ c+48(FP), DX")
	w.ins("MOVQ ldc+56(FP), R13")
	w.ins("SHLQ $2, R13")
	for g := 1; g < k.rows/3; g++ {
		w.ins("LEAQ (%s)(R8*2), %s", rowBases[g-1], rowBases[g])
		w.ins("ADDQ R8, %s", rowBases[g])
	}
	for r := 0; r < k.rows; r++ {
		for j := 0; j < k.vecs; j++ {
			a := k.acc(r, j)
			w.ins("%s %s, %s, %s", v.zero, a, a, a)
		}
	}

	// Depth loop: unroll steps at a time, then one at a time.
	w.ins("MOVQ CX, R9")
	w.ins("SHRQ $%d, R9", log2(unroll))
	w.ins("ANDQ $%d, CX", unroll-1)
	w.ins("TESTQ R9, R9")
	w.ins("JZ tail%s", s)
	w.label(fmt.Sprintf("loop%sx%d", s, unroll))
	for p := 0; p < unroll; p++ {
		k.step(w, p)
	}
	if k.b == indexedB {
		w.ins("ADDQ $%d, AX", 4*unroll)
	}
	w.ins("DECQ R9")
	w.ins("JNZ loop%sx%d", s, unroll)
	w.label("tail" + s)
	w.ins("TESTQ CX, CX")
	w.ins("JZ done%s", s)
	w.label(fmt.Sprintf("loop%sx1", s))
	k.step(w, 0)
	if k.b == indexedB {
		w.ins("ADDQ $4, AX")
	}
	w.ins("DECQ CX")
	w.ins("JNZ loop%sx1", s)

	// alpha, then bias (one value per row), then beta*C unless beta is ±0.
	w.label("done" + s)
	w.ins("VBROADCASTSS alpha+72(FP), %s", v.r(0))
	for r := 0; r < k.rows; r++ {
		for j := 0; j < k.vecs; j++ {
			a := k.acc(r, j)
			w.ins("VMULPS %s, %s, %s", v.r(0), a, a)
		}
	}
	w.ins("MOVQ bias+64(FP), BX")
	w.ins("TESTQ BX, BX")
	w.ins("JZ nobias%s", s)
	for r := 0; r < k.rows; r++ {
		w.ins("VBROADCASTSS %d(BX), %s", 4*r, v.r(1))
		for j := 0; j < k.vecs; j++ {
			a := k.acc(r, j)
			w.ins("VADDPS %s, %s, %s", v.r(1), a, a)
		}
	}
	w.label("nobias" + s)
	w.ins("MOVL beta+76(FP), AX")
	w.ins("TESTL $0x7fffffff, AX")
	w.ins("JZ store%s", s)
	w.ins("VBROADCASTSS beta+76(FP), %s", v.r(0))
	w.ins("MOVQ DX, R10")
	for r := 0; r < k.rows; r++ {
		if r > 0 {
			w.ins("ADDQ R13, R10")
		}
		for j := 0; j < k.vecs; j++ {
			w.ins("VFMADD231PS %d(R10), %s, %s", j*v.bytes, v.r(0), k.acc(r, j))
		}
	}

	// Store the tile.
	w.label("store" + s)
	for r := 0; r < k.rows; r++ {
		if r > 0 {
			w.ins("ADDQ R13, DX")
		}
		for j := 0; j < k.vecs; j++ {
			w.ins("VMOVUPS %s, %d(DX)", k.acc(r, j), j*v.bytes)
		}
	}
	w.ins("VZEROUPPER")
	w.ins("RET")
}

// step writes depth step p of an unrolled pass (p = 0 for the single
// steps): load row p of B, multiply each broadcast A value into its row of
// accumulators, advance A (and B when packed).
func (k kernel) step(w *writer, p int) {
	v := k.isa
	for j := 0; j < k.vecs; j++ {
		mem := "(DI)"
		if j > 0 {
			mem = fmt.Sprintf("%d(DI)", j*v.bytes)
		}
		if k.b == indexedB {
			if j == 0 {
				w.ins("MOVLQSX %d(AX), BX", 4*p)
			}
			mem += "(BX*4)"
		}
		w.ins("VMOVUPS %s, %s", mem, v.r(j))
	}
	for r := 0; r < k.rows; r++ {
		base := rowBases[r/3]
		mem := "(" + base + ")"
		if i := r % 3; i > 0 {
			mem += fmt.Sprintf("(R8*%d)", i)
		}
		bc := v.r(k.bcast() + r%2)
		w.ins("VBROADCASTSS %s, %s", mem, bc)
		for j := 0; j < k.vecs; j++ {
			w.ins("VFMADD231PS %s, %s, %s", v.r(j), bc, k.acc(r, j))
		}
	}
	for g := 0; g < k.rows/3; g++ {
		w.ins("ADDQ R12, %s", rowBases[g])
	}
	if k.b == packedB {
		w.ins("ADDQ AX, DI")
	}
}

// log2 returns the base-2 logarithm of a power of two.
func log2(n int) int {
	l := 0
	for n > 1 {
		n >>= 1
		l++
	}
	return l
}
