package engine

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loupe-ml/loupe/internal/testmodels"
	"github.com/loupe-ml/loupe/tensor"
)

// inputShape returns the model's first input shape with batch n (and 32
// for any other symbolic dimension).
func inputShape(m *Model, n int) []int {
	var shape []int
	for i, d := range m.Inputs()[0].Shape {
		switch {
		case i == 0:
			shape = append(shape, n)
		case d.Value > 0:
			shape = append(shape, d.Value)
		default:
			shape = append(shape, 32)
		}
	}
	return shape
}

// occludedCopies returns patches zeroing boxes of size win (after the
// batch) at the given starts, and the same copies as one full batch.
func occludedCopies(x *tensor.Tensor, name string, win []int, starts [][]int) ([]Patch, *tensor.Tensor) {
	n := x.Shape[0]
	shape := x.Shape[1:]
	row := tensor.Size(shape)
	full := tensor.New(append([]int{n * len(starts)}, shape...)...)
	var patches []Patch
	zero := make([]int, len(shape))
	for k, st := range starts {
		copy(full.F[k*x.Len():], x.F)
		vals := tensor.New(append([]int{n}, win...)...)
		box := make([]float32, tensor.Size(win))
		for r := range n {
			// Values: x over the box with a smaller occluded square inside
			// (all but the last row and column of the box), to check that
			// a patch's untouched cells keep their values.
			copyBox(vals.F[r*len(box):(r+1)*len(box)], win, zero, x.F[r*row:(r+1)*row], shape, st, win)
			for i := range box {
				idx := i
				edge := false
				for a := len(win) - 1; a >= 1; a-- {
					if idx%win[a] == win[a]-1 {
						edge = true
					}
					idx /= win[a]
				}
				if !edge {
					vals.F[r*len(box)+i] = 0
				}
			}
			copyBox(full.F[(k*n+r)*row:(k*n+r+1)*row], shape, st, vals.F[r*len(box):(r+1)*len(box)], win, zero, win)
		}
		patches = append(patches, Patch{Input: name, Start: st, Values: vals})
	}
	return patches, full
}

// checkIncremental compares Eval with a full forward pass of the copies.
func checkIncremental(t *testing.T, m *Model, n int, win []int, starts [][]int, tol float64) *Incremental {
	t.Helper()
	name := m.Inputs()[0].Name
	x := randn(7, inputShape(m, n)...)
	ctx := context.Background()
	inc, err := m.Incremental(ctx, feed(name, x), n, nil)
	if err != nil {
		t.Fatal(err)
	}
	patches, full := occludedCopies(x, name, win, starts)
	got, err := inc.Eval(ctx, patches)
	if err != nil {
		t.Fatal(err)
	}
	p, err := m.Forward(ctx, feed(name, full), nil)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := p.Output(0)
	if !tensor.SameShape(got.Shape, want.Shape) {
		t.Fatalf("shape %v, want %v", got.Shape, want.Shape)
	}
	scale := 0.0
	for _, v := range want.F {
		scale = max(scale, math.Abs(float64(v)))
	}
	if d := tensor.MaxAbsDiff(got.F, want.F); d > tol*max(scale, 1) {
		t.Errorf("max difference %g (scale %g)", d, scale)
	}
	// The base output is the unperturbed forward pass.
	p0, err := m.Forward(ctx, feed(name, x), nil)
	if err != nil {
		t.Fatal(err)
	}
	y0, _ := p0.Output(0)
	if d := tensor.MaxAbsDiff(inc.Base().F, y0.F); d > tol*max(scale, 1) {
		t.Errorf("base output differs by %g", d)
	}
	return inc
}

// grid returns window starts over the last two axes of shape (channel 0),
// corners and interior, for a window of size win.
func grid(shape, win []int, step int) [][]int {
	var starts [][]int
	H, W := shape[len(shape)-2], shape[len(shape)-1]
	wh, ww := win[len(win)-2], win[len(win)-1]
	for i := 0; i <= H-wh; i += step {
		for j := 0; j <= W-ww; j += step {
			starts = append(starts, []int{0, i, j})
		}
	}
	starts = append(starts, []int{0, H - wh, W - ww}, []int{0, H - wh, 0})
	return starts
}

func TestIncrementalMatchesFullPass(t *testing.T) {
	for _, tc := range []struct {
		model string
		n     int
		win   []int
		step  int
	}{
		{"incremental_ops.onnx", 1, []int{3, 6, 6}, 5},
		{"incremental_ops.onnx", 2, []int{1, 1, 3}, 13},
		{"cnn_s0.onnx", 1, []int{3, 5, 5}, 7},
		{"cnn_s0.onnx", 2, []int{1, 3, 4}, 9},
		{"resnet_mini_s0.onnx", 1, []int{3, 15, 15}, 52},
		{"resnet_mini_s0.onnx", 2, []int{2, 1, 1}, 101},
	} {
		t.Run(fmt.Sprintf("%s/n%d/win%v", tc.model, tc.n, tc.win), func(t *testing.T) {
			var m *Model
			if strings.HasPrefix(tc.model, "incremental") {
				var err error
				if m, err = Load(testmodels.Engine(tc.model)); err != nil {
					t.Fatal(err)
				}
			} else {
				m = load(t, tc.model)
			}
			shape := inputShape(m, tc.n)[1:]
			win := tc.win
			starts := grid(shape, win, tc.step)
			if win[0] < shape[0] {
				starts = append(starts, []int{shape[0] - win[0], 1, 2})
			}
			inc := checkIncremental(t, m, tc.n, win, starts, 1e-4)
			if len(inc.Regions()) == 0 {
				t.Error("no regions recorded")
			}
			if tc.model == "incremental_ops.onnx" && tc.n == 1 {
				// Every op type before the global mean was cropped.
				boxed := map[string]bool{}
				for _, rg := range inc.Regions() {
					boxed[rg.OpType] = boxed[rg.OpType] || !rg.Full
				}
				for _, op := range []string{"Conv", "Relu", "MaxPool", "Clip", "Add", "Pad", "AveragePool", "Sigmoid", "Mul", "LeakyRelu", "Concat"} {
					if !boxed[op] {
						t.Errorf("%s always ran whole", op)
					}
				}
			}
		})
	}
}

// TestIncrementalResNet18 checks the occlusion tutorial's windows (15x15)
// on resnet18 and that the early layers recompute only small boxes.
func TestIncrementalResNet18(t *testing.T) {
	p := testmodels.ResNet18()
	if p == "" || testing.Short() {
		t.Skip("resnet18 not found or -short")
	}
	m, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	starts := [][]int{{0, 0, 0}, {0, 104, 56}, {0, 209, 209}, {0, 8, 200}}
	inc := checkIncremental(t, m, 1, []int{3, 15, 15}, starts, 1e-4)
	logRegions(t, inc.Regions())
	var sawBox, sawFull bool
	for _, rg := range inc.Regions() {
		if rg.Full {
			sawFull = true
		} else {
			sawBox = true
			if tensor.Size(rg.Box) >= tensor.Size(rg.Shape) {
				t.Errorf("%s: box %v of %v not smaller", rg.Node, rg.Box, rg.Shape)
			}
		}
	}
	if !sawBox || !sawFull {
		t.Errorf("regions: box %v, full %v, want both", sawBox, sawFull)
	}
}

// TestIncrementalMoreModels checks the models listed in
// $LOUPE_INCREMENTAL_MODELS (comma-separated ONNX paths with a [N, 3, 224,
// 224] input, such as torchvision's mobilenet_v2 and vgg11) as resnet18,
// and logs their regions.
func TestIncrementalMoreModels(t *testing.T) {
	paths := os.Getenv("LOUPE_INCREMENTAL_MODELS")
	if paths == "" {
		t.Skip("set LOUPE_INCREMENTAL_MODELS")
	}
	for _, p := range strings.Split(paths, ",") {
		t.Run(filepath.Base(p), func(t *testing.T) {
			m, err := Load(p)
			if err != nil {
				t.Fatal(err)
			}
			starts := [][]int{{0, 0, 0}, {0, 104, 56}, {0, 209, 209}, {0, 8, 200}}
			logRegions(t, checkIncremental(t, m, 1, []int{3, 15, 15}, starts, 1e-4).Regions())
		})
	}
}

func TestIncrementalErrors(t *testing.T) {
	m := load(t, "cnn_s0.onnx")
	name := m.Inputs()[0].Name
	x := randn(1, inputShape(m, 1)...)
	ctx := context.Background()
	inc, err := m.Incremental(ctx, feed(name, x), 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	v := tensor.New(1, 3, 4, 4)
	for _, ps := range [][]Patch{
		nil,
		{{Input: "nope", Start: []int{0, 0, 0}, Values: v}},
		{{Input: name, Start: []int{0, 30, 0}, Values: v}},
		{{Input: name, Start: []int{0, 0}, Values: v}},
		{{Input: name, Start: []int{0, 0, 0}}},
		{{Input: name, Start: []int{0, 0, 0}, Values: tensor.New(2, 3, 4, 4)}},
		{{Input: name, Start: []int{0, 0, 0}, Values: v}, {Input: name, Start: []int{0, 0, 0}, Values: tensor.New(1, 3, 2, 2)}},
	} {
		if _, err := inc.Eval(ctx, ps); err == nil {
			t.Errorf("patches %v: no error", ps)
		}
	}
	if _, err := m.Incremental(ctx, feed(name, x), 0, nil); err == nil {
		t.Error("rows 0: no error")
	}
}

// logRegions logs each node's recomputed box and the fraction of the
// convolutions' multiply-adds that incremental inference does per copy.
func logRegions(t *testing.T, regions []Region) {
	var inc, full float64
	for _, rg := range regions {
		if rg.MACs > 0 {
			inc += float64(tensor.Size(rg.Box) * rg.MACs)
			full += float64(tensor.Size(rg.Shape) * rg.MACs)
		}
		if rg.OpType == "Conv" || rg.OpType == "MaxPool" || rg.OpType == "Add" || rg.Full {
			t.Logf("%-28s %-18s shape %-14v box %-14v full %v", rg.Node, rg.OpType, rg.Shape, rg.Box, rg.Full)
		}
	}
	if full > 0 {
		t.Logf("convolution multiply-adds per copy: %.3g of %.3g (%.1f%% saved)", inc, full, 100*(1-inc/full))
	}
}

// BenchmarkIncrementalResNet18 evaluates 16 occluded copies (15x15
// windows) of one resnet18 input incrementally, and as one batch of full
// passes for comparison.
func BenchmarkIncrementalResNet18(b *testing.B) {
	p := testmodels.ResNet18()
	if p == "" {
		b.Skip("resnet18 not found")
	}
	benchIncremental(b, p)
}

// BenchmarkIncrementalModels is BenchmarkIncrementalResNet18 for the models
// listed in $LOUPE_INCREMENTAL_MODELS (see TestIncrementalMoreModels).
func BenchmarkIncrementalModels(b *testing.B) {
	paths := os.Getenv("LOUPE_INCREMENTAL_MODELS")
	if paths == "" {
		b.Skip("set LOUPE_INCREMENTAL_MODELS")
	}
	for _, p := range strings.Split(paths, ",") {
		b.Run(filepath.Base(p), func(b *testing.B) { benchIncremental(b, p) })
	}
}

func benchIncremental(b *testing.B, path string) {
	m, err := Load(path)
	if err != nil {
		b.Fatal(err)
	}
	name := m.Inputs()[0].Name
	x := randn(7, 1, 3, 224, 224)
	ctx := context.Background()
	var starts [][]int
	for k := range 16 {
		starts = append(starts, []int{0, 8 * (k % 4), 8 * k})
	}
	patches, full := occludedCopies(x, name, []int{3, 15, 15}, starts)
	inc, err := m.Incremental(ctx, feed(name, x), 1, nil)
	if err != nil {
		b.Fatal(err)
	}
	var ti, tf time.Duration
	b.ResetTimer()
	for range b.N {
		// Back to back, so that both see the same load.
		t0 := time.Now()
		if _, err := inc.Eval(ctx, patches); err != nil {
			b.Fatal(err)
		}
		ti += time.Since(t0)
		t0 = time.Now()
		if _, err := m.Forward(ctx, feed(name, full), nil); err != nil {
			b.Fatal(err)
		}
		tf += time.Since(t0)
	}
	b.ReportMetric(float64(ti)/float64(tf), "incremental/full")
	b.ReportMetric(ti.Seconds()/float64(b.N), "s-incremental/op")
	b.ReportMetric(tf.Seconds()/float64(b.N), "s-full/op")
}
