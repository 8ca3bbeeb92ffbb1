package metrics

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/tensor"
)

// TestMetricsTable prints the metrics of the gradient methods on the
// oracle's CNN and small ResNet. It runs only with LOUPE_METRICS_TABLE=1
// (it takes a minute); the numbers go in the issue notes.
func TestMetricsTable(t *testing.T) {
	if os.Getenv("LOUPE_METRICS_TABLE") == "" {
		t.Skip("set LOUPE_METRICS_TABLE=1 to print the table")
	}
	ctx := context.Background()
	for _, mc := range []struct {
		file  string
		shape []int
	}{{"cnn_s0.onnx", []int{4, 3, 32, 32}}, {"resnet_mini_s0.onnx", []int{2, 3, 224, 224}}} {
		nt := loadNet(t, mc.file)
		x := []*tensor.Tensor{randn(11, mc.shape...)}
		o := attr.Options{Target: attr.Class(0)}
		fmt.Printf("%s (batch %d, target 0): mean over examples\n", mc.file, mc.shape[0])
		fmt.Printf("| method | infidelity (N(0,0.1²), normalized) | sensitivity_max (r=0.02) | deletion AUC | insertion AUC |\n|---|---|---|---|---|\n")
		for _, mm := range []struct {
			name string
			m    attr.Method
		}{
			{"Saliency", &attr.Saliency{Net: nt}},
			{"InputXGradient", &attr.InputXGradient{Net: nt}},
			{"IntegratedGradients (20 steps)", &attr.IntegratedGradients{Net: nt, NSteps: 20}},
			{"DeepLift", &attr.DeepLift{Net: nt}},
			{"GuidedBackprop", &attr.GuidedBackprop{Net: nt}},
			{"LRP", &attr.LRP{Net: nt}},
		} {
			r, err := mm.m.Attribute(ctx, x, o)
			if err != nil {
				t.Fatalf("%s: %v", mm.name, err)
			}
			inf, err := Infidelity(ctx, nt, GaussianNoise(0.1), x, r.Attributions, o, true, Options{NPerturbSamples: 20, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			sens, err := SensitivityMax(ctx, mm.m, nil, x, o, Options{NPerturbSamples: 5, Seed: 2})
			if err != nil {
				t.Fatal(err)
			}
			del, err := DeletionCurves(ctx, nt, x, r.Attributions, o, 16, false)
			if err != nil {
				t.Fatal(err)
			}
			ins, _ := DeletionCurves(ctx, nt, x, r.Attributions, o, 16, true)
			mean := func(v []float32) float64 {
				s := 0.0
				for _, x := range v {
					s += float64(x)
				}
				return s / float64(len(v))
			}
			var d, in float64
			for e := range del {
				d += del[e].AUC / float64(len(del))
				in += ins[e].AUC / float64(len(ins))
			}
			fmt.Printf("| %s | %.4g | %.3g | %.3f | %.3f |\n", mm.name, mean(inf.F), mean(sens.F), d, in)
		}
	}
}
