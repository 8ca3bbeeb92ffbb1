package kernels

// MaxInto sets dst[i] = max(dst[i], src[i]) for i < len(dst), a NaN in
// either giving NaN (as max pooling propagates it). src must be at least
// as long as dst.
func MaxInto(dst, src []float32) {
	src = src[:len(dst)]
	n := 0
	if useAVX2 {
		n = len(dst) &^ 7
		if n > 0 {
			maxIntoAVX2(&dst[0], &src[0], n)
		}
	}
	for i := n; i < len(dst); i++ {
		dst[i] = max(dst[i], src[i])
	}
}

// ReluGrad sets dst[i] to g[i] where y[i] > 0 or y[i] is NaN, and to 0
// where y[i] <= 0: the gradient of a ReLU given its output y (or its
// input), as PyTorch's threshold_backward. g and y must be at least as
// long as dst; dst may be g.
func ReluGrad(dst, g, y []float32) {
	g, y = g[:len(dst)], y[:len(dst)]
	n := 0
	if useAVX2 {
		n = len(dst) &^ 7
		if n > 0 {
			reluGradAVX2(&dst[0], &g[0], &y[0], n)
		}
	}
	for i := n; i < len(dst); i++ {
		if v := y[i]; v > 0 || v != v {
			dst[i] = g[i]
		} else {
			dst[i] = 0
		}
	}
}
