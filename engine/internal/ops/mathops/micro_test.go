package mathops

import (
	"testing"

	"github.com/loupe-ml/loupe/engine/internal/op/optest"
)

// Micro-benchmarks of the vectorized transcendental loops (64k elements).

var mx = optest.Rand(1, 1<<16).F
var my = make([]float32, 1<<16)

func BenchmarkMicroExp(b *testing.B) {
	for b.Loop() {
		vExp(my, mx)
	}
}
func BenchmarkMicroSigmoid(b *testing.B) {
	for b.Loop() {
		sigmoidSlice(my, mx)
	}
}
func BenchmarkMicroTanh(b *testing.B) {
	for b.Loop() {
		tanhSlice(my, mx)
	}
}
