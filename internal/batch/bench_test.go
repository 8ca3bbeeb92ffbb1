package batch

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/internal/explain"
	"github.com/loupe-ml/loupe/npy"
	"github.com/loupe-ml/loupe/tensor"
)

// benchFiles is the size of the benchmarks' folder of demo images.
const benchFiles = 24

// benchMethods are the methods the benchmarks time: one file by file,
// one several files per call.
var benchMethods = []string{"IntegratedGradients", "Saliency"}

// BenchmarkPlainLoop is the baseline of docs/batch.md: the model loaded
// once, then each file explained alone with explain.Run and written, in
// a plain loop (what loupe explain does per file, without restarting).
func BenchmarkPlainLoop(b *testing.B) {
	for _, method := range benchMethods {
		b.Run(method, func(b *testing.B) {
			data, _ := writeShapes(b, benchFiles)
			names, err := ListInputs(data)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ResetTimer()
			for range b.N {
				out := b.TempDir()
				m, err := LoadModel("demo")
				if err != nil {
					b.Fatal(err)
				}
				nt, _ := attr.NewNet(m)
				for _, n := range names {
					x, err := ReadInput(filepath.Join(data, n), Config{}.Pre)
					if err != nil {
						b.Fatal(err)
					}
					res, err := explain.Run(ctx, nt, []*tensor.Tensor{x}, explain.Request{Method: method, Target: explain.Predicted()})
					if err != nil {
						b.Fatal(err)
					}
					if err := npy.WriteFile(filepath.Join(out, Stem(n)+".npy"), res.Attributions[0]); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(benchFiles*b.N)/b.Elapsed().Seconds(), "files/s")
		})
	}
}

// BenchmarkPipeline times Run, the whole job (listing, pipeline,
// manifest), on Beam's local runners.
func BenchmarkPipeline(b *testing.B) {
	for _, runner := range []string{"direct", "prism"} {
		for _, method := range benchMethods {
			b.Run(runner+"/"+method, func(b *testing.B) {
				data, _ := writeShapes(b, benchFiles)
				b.ResetTimer()
				for range b.N {
					cfg := Config{Model: "demo", Data: data, Out: b.TempDir(), Method: method, Target: "pred"}
					sum, err := Run(context.Background(), cfg, Options{Runner: runner})
					if err != nil || sum.Done != benchFiles {
						b.Fatalf("%+v, %v", sum, err)
					}
				}
				b.ReportMetric(float64(benchFiles*b.N)/b.Elapsed().Seconds(), "files/s")
			})
		}
	}
}

// BenchmarkWorker times what each Beam worker does (Worker.Explain on
// every file: batching, predictions, deltas, parts), without Beam.
func BenchmarkWorker(b *testing.B) {
	for _, method := range benchMethods {
		b.Run(method, func(b *testing.B) {
			data, _ := writeShapes(b, benchFiles)
			names, err := ListInputs(data)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				cfg := Config{Model: "demo", Data: data, Out: b.TempDir(), Method: method, Target: "pred"}
				if err := os.MkdirAll(filepath.Join(cfg.Out, partsDir), 0o755); err != nil {
					b.Fatal(err)
				}
				w, err := NewWorker(cfg)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := w.Explain(context.Background(), names); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(benchFiles*b.N)/b.Elapsed().Seconds(), "files/s")
		})
	}
}
