//go:build !amd64 || purego

package kernels

func winoInAVX2(src *float32, ps, rs int, dst *float32, xs int) {
	panic("kernels: no AVX2 Winograd transforms in this build")
}

func winoOutAVX2(src *float32, ms int, y *float32, ldy int, bias float32) {
	panic("kernels: no AVX2 Winograd transforms in this build")
}

func winoWeightsAVX2(w *float32, idx *int32, gm *float32, u *float32, us int) {
	panic("kernels: no AVX2 Winograd transforms in this build")
}

func winoSplitAVX2(src *float32, n int, dst *float32, ps int) {
	panic("kernels: no AVX2 Winograd transforms in this build")
}

// winoAsm reports whether the AVX2 transforms can run.
func winoAsm() bool { return false }
