//go:build amd64 && !purego

// Elementwise loops for MaxInto and ReluGrad, 8 floats a step; the Go
// wrappers do the tails.

#include "textflag.h"

// func maxIntoAVX2(dst, src *float32, n int)
TEXT ·maxIntoAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JZ maxdone

maxloop:
	VMOVUPS (DI), Y0
	VMOVUPS (SI), Y1
	// Y2 = max(Y1, Y0), Y0 (dst) where either is NaN; then src where
	// src is NaN.
	VMAXPS Y0, Y1, Y2
	VCMPPS $3, Y1, Y1, Y3
	VBLENDVPS Y3, Y1, Y2, Y2
	VMOVUPS Y2, (DI)
	ADDQ $32, DI
	ADDQ $32, SI
	DECQ CX
	JNZ maxloop

maxdone:
	VZEROUPPER
	RET

// func reluGradAVX2(dst, grad, y *float32, n int)
TEXT ·reluGradAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ grad+8(FP), SI
	MOVQ y+16(FP), DX
	MOVQ n+24(FP), CX
	SHRQ $3, CX
	JZ reludone
	VXORPS Y4, Y4, Y4

reluloop:
	// mask = !(y <= 0): true for y > 0 and for NaN.
	VMOVUPS (DX), Y1
	VCMPPS $6, Y4, Y1, Y2
	VANDPS (SI), Y2, Y3
	VMOVUPS Y3, (DI)
	ADDQ $32, DI
	ADDQ $32, SI
	ADDQ $32, DX
	DECQ CX
	JNZ reluloop

reludone:
	VZEROUPPER
	RET
