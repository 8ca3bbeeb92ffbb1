//go:build amd64 && !purego

//go:generate go run ./_asm -out kernel_amd64.s
package kernels

// useAVX2 is fixed at start-up: whether the CPU and OS support AVX2 and
// FMA, so that the assembly micro-kernel can run.
var useAVX2 = detectAVX2()

// detectAVX2 checks CPUID for AVX, FMA, OSXSAVE and AVX2, and XCR0 for
// the OS saving the YMM state.
func detectAVX2() bool {
	maxID, _, _, _ := cpuid(0, 0)
	if maxID < 7 {
		return false
	}
	_, _, ecx1, _ := cpuid(1, 0)
	const fma, osxsave, avx = 1 << 12, 1 << 27, 1 << 28
	if ecx1&(fma|osxsave|avx) != fma|osxsave|avx {
		return false
	}
	if xgetbv()&6 != 6 { // XMM and YMM state
		return false
	}
	_, ebx7, _, _ := cpuid(7, 0)
	return ebx7&(1<<5) != 0
}

func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)

func xgetbv() uint32

// sgemm6x16AVX2 is the micro-kernel: for the 6×16 tile C (row stride
// ldc elements) it computes C = alpha*A·B + beta*C + bias over k ≥ 1
// depth steps, where A(r, p) = a[r*rs + p*cs], B(p, j) = b[p*bs + j] and
// bias (6 row values) may be nil. With beta ±0, C is only written.
//
//go:noescape
func sgemm6x16AVX2(k int, a *float32, rs, cs int, b *float32, bs int, c *float32, ldc int, bias *float32, alpha, beta float32)

// sgemm6x8AVX2 is sgemm6x16AVX2 for a 6×8 tile.
//
//go:noescape
func sgemm6x8AVX2(k int, a *float32, rs, cs int, b *float32, bs int, c *float32, ldc int, bias *float32, alpha, beta float32)

// microKernelHalf is microKernel for only the first nr/2 columns of the
// tile.
func microKernelHalf(kc int, a []float32, rs, cs int, bp []float32, bs int, c []float32, ldc int, alpha, beta float32, bias []float32) {
	if useAVX2 {
		_ = a[(mr-1)*rs+(kc-1)*cs]
		_ = bp[(kc-1)*bs+nr/2-1]
		_ = c[(mr-1)*ldc+nr/2-1]
		var pb *float32
		if bias != nil {
			_ = bias[mr-1]
			pb = &bias[0]
		}
		sgemm6x8AVX2(kc, &a[0], rs, cs, &bp[0], bs, &c[0], ldc, pb, alpha, beta)
		return
	}
	microKernelGo(kc, a, rs, cs, bp, bs, c, ldc, alpha, beta, bias)
}

// sgemm6x16IdxAVX2 is sgemm6x16AVX2 with B(p, j) = b[offs[p] + j].
//
//go:noescape
func sgemm6x16IdxAVX2(k int, a *float32, rs, cs int, b *float32, offs *int32, c *float32, ldc int, bias *float32, alpha, beta float32)

// sgemm6x8IdxAVX2 is sgemm6x16IdxAVX2 for a 6×8 tile.
//
//go:noescape
func sgemm6x8IdxAVX2(k int, a *float32, rs, cs int, b *float32, offs *int32, c *float32, ldc int, bias *float32, alpha, beta float32)

// microKernelIdx computes one mr×nr tile (the first nr/2 columns if
// half), C = alpha*A·B + beta*C + bias, with A(r, p) = a[r*rs + p*cs] and
// B(p, j) = b[offs[p] + j]; maxOff is the largest of offs[:kc], which
// the caller computes once for many tiles.
func microKernelIdx(half bool, kc int, a []float32, rs, cs int, b []float32, offs []int32, maxOff int, c []float32, ldc int, alpha, beta float32, bias []float32) {
	if !useAVX2 {
		microKernelIdxGo(half, kc, a, rs, cs, b, offs, c, ldc, alpha, beta, bias)
		return
	}
	w := nr
	if half {
		w = nr / 2
	}
	offs = offs[:kc]
	_ = a[(mr-1)*rs+(kc-1)*cs]
	if maxOff < 0 || maxOff+w > len(b) {
		panic("kernels: B offset out of range")
	}
	_ = c[(mr-1)*ldc+w-1]
	var pb *float32
	if bias != nil {
		_ = bias[mr-1]
		pb = &bias[0]
	}
	if half {
		sgemm6x8IdxAVX2(kc, &a[0], rs, cs, &b[0], &offs[0], &c[0], ldc, pb, alpha, beta)
		return
	}
	sgemm6x16IdxAVX2(kc, &a[0], rs, cs, &b[0], &offs[0], &c[0], ldc, pb, alpha, beta)
}

// microKernel computes one mr×nr tile, C = alpha*A·B + beta*C + bias;
// see microKernelGo.
func microKernel(kc int, a []float32, rs, cs int, bp []float32, bs int, c []float32, ldc int, alpha, beta float32, bias []float32) {
	if useAVX2 {
		_ = a[(mr-1)*rs+(kc-1)*cs]
		_ = bp[(kc-1)*bs+nr-1]
		_ = c[(mr-1)*ldc+nr-1]
		var pb *float32
		if bias != nil {
			_ = bias[mr-1]
			pb = &bias[0]
		}
		sgemm6x16AVX2(kc, &a[0], rs, cs, &bp[0], bs, &c[0], ldc, pb, alpha, beta)
		return
	}
	microKernelGo(kc, a, rs, cs, bp, bs, c, ldc, alpha, beta, bias)
}

//go:noescape
func dotAVX2(n int, x, y *float32) float32

//go:noescape
func axpyAVX2(n int, alpha float32, x, y *float32)

// dot returns the dot product of x and y[:len(x)].
func dot(x, y []float32) float32 {
	n := len(x)
	y = y[:n]
	var s float32
	if n8 := n &^ 7; useAVX2 && n8 > 0 {
		s = dotAVX2(n8, &x[0], &y[0])
		x, y = x[n8:], y[n8:]
	}
	return s + dotGo(x, y)
}

// axpy computes y[:len(x)] += alpha*x.
func axpy(alpha float32, x, y []float32) {
	n := len(x)
	y = y[:n]
	if n8 := n &^ 7; useAVX2 && n8 > 0 {
		axpyAVX2(n8, alpha, &x[0], &y[0])
		x, y = x[n8:], y[n8:]
	}
	axpyGo(alpha, x, y)
}

// kernelName describes the micro-kernel in use.
func kernelName() string {
	if useAVX2 {
		return "AVX2+FMA assembly"
	}
	return "pure Go"
}
