package nnops

import (
	"testing"

	"github.com/loupe-ml/loupe/engine/op"
	"github.com/loupe-ml/loupe/engine/op/optest"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

func benchOp(b *testing.B, n *graph.Node, backward bool, in ...*tensor.Tensor) {
	m := map[string]op.Factory{}
	Register(m)
	k, err := m[n.OpType](n, 13)
	if err != nil {
		b.Fatal(err)
	}
	out, err := k.Forward(in)
	if err != nil {
		b.Fatal(err)
	}
	need := make([]bool, len(in))
	need[0] = true
	gout := []*tensor.Tensor{optest.Rand(9, out[0].Shape...)}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if backward {
			if _, err := k.(op.Differentiable).Backward(in, out, gout, need); err != nil {
				b.Fatal(err)
			}
		} else if _, err := k.Forward(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkConv3x3(b *testing.B) {
	benchOp(b, mk("Conv", 2, 1, aInts("pads", 1, 1, 1, 1)), false, optest.Rand(1, 1, 64, 56, 56), optest.Rand(2, 64, 64, 3, 3))
}

func BenchmarkConv3x3Backward(b *testing.B) {
	benchOp(b, mk("Conv", 2, 1, aInts("pads", 1, 1, 1, 1)), true, optest.Rand(1, 1, 64, 56, 56), optest.Rand(2, 64, 64, 3, 3))
}

func BenchmarkConv7x7Stride2(b *testing.B) {
	benchOp(b, mk("Conv", 2, 1, aInts("pads", 3, 3, 3, 3), aInts("strides", 2, 2)), false, optest.Rand(1, 1, 3, 224, 224), optest.Rand(2, 64, 3, 7, 7))
}

func BenchmarkBatchNorm(b *testing.B) {
	c := 64
	benchOp(b, mk("BatchNormalization", 5, 1), false, optest.Rand(1, 10, c, 112, 112), optest.Rand(2, c), optest.Rand(3, c), optest.Rand(4, c), positive(optest.Rand(5, c)))
}

func BenchmarkMaxPool(b *testing.B) {
	benchOp(b, mk("MaxPool", 1, 1, aInts("kernel_shape", 3, 3), aInts("strides", 2, 2), aInts("pads", 1, 1, 1, 1)), false, optest.Rand(1, 10, 64, 112, 112))
}

func BenchmarkMaxPoolBackward(b *testing.B) {
	benchOp(b, mk("MaxPool", 1, 1, aInts("kernel_shape", 3, 3), aInts("strides", 2, 2), aInts("pads", 1, 1, 1, 1)), true, optest.Rand(1, 10, 64, 112, 112))
}

func BenchmarkAveragePool(b *testing.B) {
	benchOp(b, mk("AveragePool", 1, 1, aInts("kernel_shape", 3, 3), aInts("strides", 2, 2), aInts("pads", 1, 1, 1, 1)), false, optest.Rand(1, 10, 64, 112, 112))
}

func BenchmarkGlobalAveragePool(b *testing.B) {
	benchOp(b, mk("GlobalAveragePool", 1, 1), false, optest.Rand(1, 10, 512, 7, 7))
}
