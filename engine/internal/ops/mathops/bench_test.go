package mathops

import (
	"testing"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/engine/internal/op/optest"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

type benchCase struct {
	name  string
	op    string
	attrs []*graph.Attr
	in    []*tensor.Tensor
}

func benchCases() []benchCase {
	act := optest.Rand(1, 8, 64, 56, 56) // 1.6M elements
	small := optest.Rand(2, 1, 64, 56, 56)
	bias := optest.Rand(3, 64, 1, 1)
	tok := optest.Rand(4, 8, 128, 768)
	w := optest.Rand(5, 768, 768)
	b := optest.Rand(6, 768)
	fc := optest.Rand(7, 64, 512)
	fw := optest.Rand(8, 1000, 512)
	logits := optest.Rand(9, 8, 12, 128, 128)
	q := optest.Rand(10, 8, 12, 128, 64)
	kT := optest.Rand(11, 8, 12, 64, 128)
	return []benchCase{
		{"Relu/1.6M", "Relu", nil, []*tensor.Tensor{act}},
		{"Relu/200k", "Relu", nil, []*tensor.Tensor{small}},
		{"Sigmoid/1.6M", "Sigmoid", nil, []*tensor.Tensor{act}},
		{"Tanh/1.6M", "Tanh", nil, []*tensor.Tensor{act}},
		{"Add/same/1.6M", "Add", nil, []*tensor.Tensor{act, act}},
		{"Add/bias/1.6M", "Add", nil, []*tensor.Tensor{act, bias}},
		{"Mul/same/1.6M", "Mul", nil, []*tensor.Tensor{act, act}},
		{"Mul/bias/1.6M", "Mul", nil, []*tensor.Tensor{act, bias}},
		{"Add/rowbias/786k", "Add", nil, []*tensor.Tensor{tok, b}},
		{"Softmax/8x12x128x128", "Softmax", nil, []*tensor.Tensor{logits}},
		{"ReduceMean/HW", "ReduceMean", []*graph.Attr{aInts("axes", 2, 3)}, []*tensor.Tensor{act}},
		{"ReduceMean/last", "ReduceMean", []*graph.Attr{aInts("axes", -1)}, []*tensor.Tensor{tok}},
		{"Gemm/64x512x1000", "Gemm", []*graph.Attr{aI("transB", 1)}, []*tensor.Tensor{fc, fw, optest.Rand(12, 1000)}},
		{"MatMul/1024x768x768", "MatMul", nil, []*tensor.Tensor{tok, w}},
		{"MatMul/attn", "MatMul", nil, []*tensor.Tensor{q, kT}},
		{"LayerNorm/1024x768", "LayerNormalization", nil, []*tensor.Tensor{tok, b, b}},
	}
}

func BenchmarkForward(b *testing.B) {
	for _, c := range benchCases() {
		k := kern(b, c.op, 17, c.attrs...)
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := k.Forward(c.in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkBackward(b *testing.B) {
	for _, c := range benchCases() {
		k := kern(b, c.op, 17, c.attrs...)
		out := fwd(b, k, c.in...)
		gout := []*tensor.Tensor{optest.Rand(13, out[0].Shape...)}
		need := make([]bool, len(c.in))
		need[0] = true // input gradients only, as attribution needs
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := k.(op.Differentiable).Backward(c.in, out, gout, need); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
