package engine

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/loupe-ml/loupe/internal/testmodels"
	"github.com/loupe-ml/loupe/tensor"
)

// resnet18Path finds the oracle's resnet18 (kept out of the repository).
func resnet18Path() string { return testmodels.ResNet18() }

func benchModel(b *testing.B, path string, batch int, shape []int, grad bool) {
	m, err := Load(path)
	if err != nil {
		b.Fatal(err)
	}
	x := randn(1, append([]int{batch}, shape...)...)
	ctx := context.Background()
	in := feed("input", x)
	var seed *tensor.Tensor
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// The input gradient as attr's plain gradient methods (Saliency,
		// IntegratedGradients) compute it: with Conv -> BatchNormalization
		// -> Relu chains folded (Options.Fuse).
		p, err := m.Forward(ctx, in, &Options{Record: grad, Fuse: grad})
		if err != nil {
			b.Fatal(err)
		}
		if !grad {
			continue
		}
		if seed == nil {
			y, _ := p.Output(0)
			seed = tensor.New(y.Shape...)
			for r := 0; r < batch; r++ {
				seed.F[r*y.Shape[1]] = 1 // target class 0 for every example
			}
		}
		if _, err := p.Backward(ctx, feed("output", seed), []string{"input"}, nil); err != nil {
			b.Fatal(err)
		}
		p.Release() // as attr does: the next pass reuses the memory
	}
}

func BenchmarkResNet18(b *testing.B) {
	path := resnet18Path()
	if path == "" {
		b.Skip("resnet18_s0.onnx not found; set LOUPE_RESNET18")
	}
	for _, bs := range []int{1, 10} {
		b.Run(name("forward", bs), func(b *testing.B) { benchModel(b, path, bs, []int{3, 224, 224}, false) })
		b.Run(name("forward+grad", bs), func(b *testing.B) { benchModel(b, path, bs, []int{3, 224, 224}, true) })
	}
}

func BenchmarkResNetMini(b *testing.B) {
	path := filepath.Join(modelDir, "resnet_mini_s0.onnx")
	for _, bs := range []int{1, 10} {
		b.Run(name("forward", bs), func(b *testing.B) { benchModel(b, path, bs, []int{3, 224, 224}, false) })
		b.Run(name("forward+grad", bs), func(b *testing.B) { benchModel(b, path, bs, []int{3, 224, 224}, true) })
	}
}

func BenchmarkCNN(b *testing.B) {
	path := filepath.Join(modelDir, "cnn_s0.onnx")
	for _, bs := range []int{1, 10} {
		b.Run(name("forward", bs), func(b *testing.B) { benchModel(b, path, bs, []int{3, 32, 32}, false) })
		b.Run(name("forward+grad", bs), func(b *testing.B) { benchModel(b, path, bs, []int{3, 32, 32}, true) })
	}
}

func name(what string, batch int) string { return fmt.Sprintf("%s/b%d", what, batch) }
