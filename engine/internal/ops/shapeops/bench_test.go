package shapeops

import (
	"testing"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/engine/internal/op/optest"
	"github.com/loupe-ml/loupe/tensor"
)

func BenchmarkTransposeNCHWtoNHWC(b *testing.B) {
	x := optest.Rand(1, 1, 64, 56, 56)
	k, _ := newTranspose(mkNode("Transpose", aInts("perm", 0, 2, 3, 1)), 13)
	in := []*tensor.Tensor{x}
	for b.Loop() {
		k.Forward(in)
	}
}

func BenchmarkGatherEmbedding(b *testing.B) {
	emb := optest.Rand(1, 30000, 256)
	idx := tensor.NewInt(8, 128)
	for i := range idx.I {
		idx.I[i] = int64(i * 97 % 30000)
	}
	k, _ := newGather(mkNode("Gather"), 13)
	in := []*tensor.Tensor{emb, idx}
	for b.Loop() {
		k.Forward(in)
	}
}

func BenchmarkLSTM(b *testing.B) {
	const S, N, I, H = 32, 4, 64, 128
	k, _ := newLSTM(mkNode("LSTM", aInt("hidden_size", H)), 14)
	in := []*tensor.Tensor{optest.Rand(1, S, N, I), optest.Rand(2, 1, 4*H, I), optest.Rand(3, 1, 4*H, H), optest.Rand(4, 1, 8*H)}
	b.Run("forward", func(b *testing.B) {
		for b.Loop() {
			k.Forward(in)
		}
	})
	b.Run("backward", func(b *testing.B) {
		out, _ := k.Forward(in)
		need := []bool{true, true, true, true}
		for b.Loop() {
			k.(op.Differentiable).Backward(in, out, out, need)
		}
	})
}
