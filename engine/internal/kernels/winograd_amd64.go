//go:build amd64 && !purego

//go:generate go run ./_winoasm -out winograd_amd64.s

package kernels

// winoInAVX2 transforms the input windows of 8 consecutive tiles of a
// tile row; see winograd_amd64.s.
//
//go:noescape
func winoInAVX2(src *float32, ps, rs int, dst *float32, xs int)

// winoOutAVX2 transforms the GEMM results of 8 consecutive tiles of a
// tile row into their outputs; see winograd_amd64.s.
//
//go:noescape
func winoOutAVX2(src *float32, ms int, y *float32, ldy int, bias float32)

// winoWeightsAVX2 transforms 8 3×3 kernels; see winograd_amd64.s.
//
//go:noescape
func winoWeightsAVX2(w *float32, idx *int32, gm *float32, u *float32, us int)

// winoSplitAVX2 splits groups of 32 floats into their 4 column phases;
// see winograd_amd64.s.
//
//go:noescape
func winoSplitAVX2(src *float32, n int, dst *float32, ps int)

// winoAsm reports whether the AVX2 transforms can run.
func winoAsm() bool { return useAVX2 }
