package nnops

import (
	"fmt"
	"testing"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/engine/internal/op/optest"
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

// resnet18Convs lists the convolutions of resnet18 at 224x224: input
// channels, output channels, kernel, stride, input size, and how many times
// the layer occurs.
var resnet18Convs = []struct{ c, m, k, s, h, times int }{
	{3, 64, 7, 2, 224, 1},
	{64, 64, 3, 1, 56, 4},
	{64, 128, 3, 2, 56, 1}, {128, 128, 3, 1, 28, 3}, {64, 128, 1, 2, 56, 1},
	{128, 256, 3, 2, 28, 1}, {256, 256, 3, 1, 14, 3}, {128, 256, 1, 2, 28, 1},
	{256, 512, 3, 2, 14, 1}, {512, 512, 3, 1, 7, 3}, {256, 512, 1, 2, 14, 1},
}

// BenchmarkResNet18Convs times all of resnet18's convolutions, forward and
// input gradient, at batch 1 and 10.
func BenchmarkResNet18Convs(b *testing.B) {
	for _, batch := range []int{1, 10} {
		for _, backward := range []bool{false, true} {
			name := fmt.Sprintf("batch%d", batch)
			if backward {
				name += "/backward"
			}
			b.Run(name, func(b *testing.B) {
				type layer struct {
					k       op.Differentiable
					in, out []*tensor.Tensor
					gout    []*tensor.Tensor
					times   int
				}
				var ls []layer
				for i, c := range resnet18Convs {
					p := int64(c.k / 2)
					n := mk("Conv", 2, 1, aInts("pads", p, p, p, p), aInts("strides", int64(c.s), int64(c.s)))
					k, err := newConv(n, 13)
					if err != nil {
						b.Fatal(err)
					}
					in := []*tensor.Tensor{optest.Rand(uint64(i), batch, c.c, c.h, c.h), optest.Rand(uint64(i+50), c.m, c.c, c.k, c.k)}
					out, err := k.Forward(in)
					if err != nil {
						b.Fatal(err)
					}
					ls = append(ls, layer{k.(op.Differentiable), in, out, []*tensor.Tensor{optest.Rand(9, out[0].Shape...)}, c.times})
				}
				need := []bool{true, false}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					for _, l := range ls {
						for r := 0; r < l.times; r++ {
							var err error
							if backward {
								_, err = l.k.Backward(l.in, l.out, l.gout, need)
							} else {
								_, err = l.k.Forward(l.in)
							}
							if err != nil {
								b.Fatal(err)
							}
						}
					}
				}
			})
		}
	}
}
