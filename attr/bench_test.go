package attr

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/internal/testmodels"
	"github.com/loupe-ml/loupe/tensor"
)

// resnet18 loads the oracle's resnet18 (45 MB, kept out of the
// repository): $LOUPE_RESNET18, or shared/oracle/models/resnet18_s0.onnx in
// a folder above the repository.
func resnet18(b *testing.B) *Net {
	p := testmodels.ResNet18()
	if p == "" {
		b.Skip("resnet18_s0.onnx not found; set LOUPE_RESNET18")
	}
	m, err := engine.Load(p)
	if err != nil {
		b.Fatal(err)
	}
	n, err := NewNet(m)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkResNet18 runs the attribution workloads of the oracle's
// torch_bench.json on resnet18, batch 1, target 0.
func BenchmarkResNet18(b *testing.B) {
	nt := resnet18(b)
	x := []*tensor.Tensor{randn(1, 1, 1, 3, 224, 224)}
	o := Options{Target: Class(0)}
	for _, bm := range []struct {
		name string
		m    Method
	}{
		{"saliency", &Saliency{Net: nt}},
		{"ig_n50_ibsNone", &IntegratedGradients{Net: nt}},
		{"ig_n50_ibs10", &IntegratedGradients{Net: nt, InternalBatchSize: 10}},
		{"deeplift", &DeepLift{Net: nt}},
		{"layergradcam_layer4", &LayerGradCam{Net: nt, Layer: "layer4"}},
		{"occlusion_tutorial", &Occlusion{Model: nt, SlidingWindowShapes: [][]int{{3, 15, 15}}, Strides: [][]int{{3, 8, 8}}, PerturbationsPerEval: 1}},
		{"occlusion_tutorial_ppe16", &Occlusion{Model: nt, SlidingWindowShapes: [][]int{{3, 15, 15}}, Strides: [][]int{{3, 8, 8}}, PerturbationsPerEval: 16}},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := bm.m.Attribute(context.Background(), x, o); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCNN runs NoiseTunnel(IG) on the small CNN as torch_bench.json.
func BenchmarkCNN(b *testing.B) {
	m, err := engine.Load(filepath.Join(modelDir, "cnn_s0.onnx"))
	if err != nil {
		b.Fatal(err)
	}
	nt, _ := NewNet(m)
	x := []*tensor.Tensor{randn(1, 1, 1, 3, 32, 32)}
	tun := &NoiseTunnel{Method: &IntegratedGradients{Net: nt}, NSamples: 10, Stdevs: []float64{0.1}}
	grid := tensor.NewInt(1, 1, 32, 32)
	for y := 0; y < 32; y++ {
		for x := 0; x < 32; x++ {
			grid.I[y*32+x] = int64((y/8)*4 + x/8)
		}
	}
	for _, bm := range []struct {
		name string
		m    Method
	}{
		{"featureablation_per_element", &FeatureAblation{Model: nt}},
		{"featureablation_per_element_ppe64", &FeatureAblation{Model: nt, PerturbationsPerEval: 64}},
		{"shapleyvaluesampling_n25_mask4x4", &ShapleyValueSampling{Model: nt, NSamples: 25, FeatureMask: []*tensor.Tensor{grid}}},
		{"shapleyvaluesampling_n25_mask4x4_ppe16", &ShapleyValueSampling{Model: nt, NSamples: 25, FeatureMask: []*tensor.Tensor{grid}, PerturbationsPerEval: 16}},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := bm.m.Attribute(context.Background(), x, Options{Target: Class(0)}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("noisetunnel_ig_nt10", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := tun.Attribute(context.Background(), x, Options{Target: Class(0)}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkText runs LayerIntegratedGradients on the text model's
// embedding (50 steps, batch 2).
func BenchmarkText(b *testing.B) {
	m, err := engine.Load(filepath.Join(modelDir, "text_s0.onnx"))
	if err != nil {
		b.Fatal(err)
	}
	nt, _ := NewNet(m)
	tok := tensor.NewInt(2, 7)
	for i := range tok.I {
		tok.I[i] = int64(i*7) % 50
	}
	lig := &LayerIntegratedGradients{Net: nt, Layer: "emb"}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := lig.Attribute(context.Background(), []*tensor.Tensor{tok}, Options{Target: Class(1), Baselines: []*tensor.Tensor{tensor.ScalarInt(0)}}); err != nil {
			b.Fatal(err)
		}
	}
}
