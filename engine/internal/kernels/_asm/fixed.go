package main

// The text below has no parameters and is written out as it is.

// intro follows the build constraint.
const intro = `// The GEMM micro-kernels in this file are written out by the generator
// in _asm from a few parameters (they differ only in tile width and in
// how B is read): change _asm and run go generate, not this file.
`

// cpuidAsm holds cpuid and xgetbv, for detecting AVX2 and FMA.
const cpuidAsm = `// func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL eaxArg+0(FP), AX
	MOVL ecxArg+4(FP), CX
	CPUID
	MOVL AX, eax+8(FP)
	MOVL BX, ebx+12(FP)
	MOVL CX, ecx+16(FP)
	MOVL DX, edx+20(FP)
	RET

// func xgetbv() uint32
TEXT ·xgetbv(SB), NOSPLIT, $0-4
	MOVL $0, CX
	XGETBV
	MOVL AX, ret+0(FP)
	RET
`

// gemmDoc describes the micro-kernels: their arguments and registers.
const gemmDoc = `// GEMM micro-kernels: C (6 rows × 16 or 8 columns, row stride ldc
// elements) = alpha*A·B + beta*C + bias, over k >= 1 depth steps.
//
// A(r, p) = a[r*rs + p*cs] (any strides: packed, as stored, transposed).
// Rows 0-2 are addressed from SI, rows 3-5 from R11 = SI + 3*rs, with the
// index R8 = rs in bytes; both pointers advance by R12 = cs bytes a step.
//
// B(p, j) = b[p*bs + j] (the strided kernels; AX = bs in bytes), or
// b[offs[p] + j] (the indexed kernels, for convolutions that read the
// input image in place; AX walks offs, BX holds the offset).
//
// Accumulators Y4.. hold the tile, one or two YMM registers per row; per
// depth step the row of B is loaded into Y0 (and Y1) and each A value is
// broadcast, alternately into Y2 and Y3, and multiplied into its row.
// bias (6 row values) may be nil. With beta ±0, C is only written.
`

// dotAsm is dotAVX2.
const dotAsm = `// func dotAVX2(n int, x, y *float32) float32
//
// Returns the dot product of x[:n] and y[:n]; n must be a multiple of 8.
TEXT ·dotAVX2(SB), NOSPLIT, $0-28
	MOVQ n+0(FP), CX
	MOVQ x+8(FP), SI
	MOVQ y+16(FP), DI
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	MOVQ CX, R9
	SHRQ $5, R9
	ANDQ $31, CX
	SHRQ $3, CX
	TESTQ R9, R9
	JZ dtail

dloop32:
	VMOVUPS (SI), Y4
	VMOVUPS 32(SI), Y5
	VMOVUPS 64(SI), Y6
	VMOVUPS 96(SI), Y7
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS 32(DI), Y5, Y1
	VFMADD231PS 64(DI), Y6, Y2
	VFMADD231PS 96(DI), Y7, Y3
	ADDQ $128, SI
	ADDQ $128, DI
	DECQ R9
	JNZ dloop32

dtail:
	TESTQ CX, CX
	JZ dsum

dloop8:
	VMOVUPS (SI), Y4
	VFMADD231PS (DI), Y4, Y0
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ dloop8

dsum:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET
`

// axpyAsm is axpyAVX2.
const axpyAsm = `// func axpyAVX2(n int, alpha float32, x, y *float32)
//
// Computes y[:n] += alpha*x[:n]; n must be a multiple of 8.
TEXT ·axpyAVX2(SB), NOSPLIT, $0-32
	MOVQ n+0(FP), CX
	VBROADCASTSS alpha+8(FP), Y0
	MOVQ x+16(FP), SI
	MOVQ y+24(FP), DI
	MOVQ CX, R9
	SHRQ $5, R9
	ANDQ $31, CX
	SHRQ $3, CX
	TESTQ R9, R9
	JZ atail

aloop32:
	VMOVUPS (DI), Y4
	VMOVUPS 32(DI), Y5
	VMOVUPS 64(DI), Y6
	VMOVUPS 96(DI), Y7
	VFMADD231PS (SI), Y0, Y4
	VFMADD231PS 32(SI), Y0, Y5
	VFMADD231PS 64(SI), Y0, Y6
	VFMADD231PS 96(SI), Y0, Y7
	VMOVUPS Y4, (DI)
	VMOVUPS Y5, 32(DI)
	VMOVUPS Y6, 64(DI)
	VMOVUPS Y7, 96(DI)
	ADDQ $128, SI
	ADDQ $128, DI
	DECQ R9
	JNZ aloop32

atail:
	TESTQ CX, CX
	JZ adone

aloop8:
	VMOVUPS (DI), Y4
	VFMADD231PS (SI), Y0, Y4
	VMOVUPS Y4, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ aloop8

adone:
	VZEROUPPER
	RET
`
