package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/internal/demo"
	"github.com/loupe-ml/loupe/internal/testmodels"
	"github.com/loupe-ml/loupe/npy"
	"github.com/loupe-ml/loupe/tensor"
	"github.com/loupe-ml/loupe/viz"
)

var cnn = testmodels.Path("cnn_s0.onnx")

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	return out.String() + errb.String(), err
}

// TestExplainMatchesLibrary runs loupe explain on an oracle model and
// compares its .npy output with the library's result.
func TestExplainMatchesLibrary(t *testing.T) {
	dir := t.TempDir()
	x := tensor.New(2, 3, 32, 32)
	for i := range x.F {
		x.F[i] = float32((i*7919)%1000) / 1000
	}
	in := filepath.Join(dir, "x.npy")
	if err := npy.WriteFile(in, x); err != nil {
		t.Fatal(err)
	}
	m, err := engine.Load(cnn)
	if err != nil {
		t.Fatal(err)
	}
	nt, _ := attr.NewNet(m)
	cases := []struct {
		args []string
		want attr.Method
		o    attr.Options
	}{
		{[]string{"--method", "IntegratedGradients", "--target", "3", "--param", "n_steps=20"}, &attr.IntegratedGradients{Net: nt, NSteps: 20}, attr.Options{Target: attr.Class(3)}},
		{[]string{"--method", "Saliency", "--target", "1,4", "--param", "abs=false"}, &attr.Saliency{Net: nt, Signed: true}, attr.Options{Target: attr.Classes(1, 4)}},
		{[]string{"--method", "LayerGradCam", "--target", "2", "--layer", "conv2"}, &attr.LayerGradCam{Net: nt, Layer: "conv2"}, attr.Options{Target: attr.Class(2)}},
		{[]string{"--method", "Occlusion", "--target", "0", "--param", "sliding_window_shapes=3,8,8", "--param", "strides=3,4,4"}, &attr.Occlusion{Model: nt, SlidingWindowShapes: [][]int{{3, 8, 8}}, Strides: [][]int{{3, 4, 4}}}, attr.Options{Target: attr.Class(0)}},
	}
	y, err := nt.Eval(context.Background(), []*tensor.Tensor{x})
	if err != nil {
		t.Fatal(err)
	}
	top, _, _ := attr.TopClasses(y)
	cases = append(cases, struct {
		args []string
		want attr.Method
		o    attr.Options
	}{[]string{"--method", "InputXGradient", "--target", "pred"}, &attr.InputXGradient{Net: nt}, attr.Options{Target: attr.Classes(top...)}})
	for _, tc := range cases {
		out := filepath.Join(dir, "out")
		args := append([]string{"explain", "--model", cnn, "--input", in, "--out", out, "--quiet"}, tc.args...)
		if msg, err := runCLI(t, args...); err != nil {
			t.Fatalf("%v: %v\n%s", tc.args, err, msg)
		}
		got, err := npy.ReadFile(filepath.Join(out, "attributions_0.npy"))
		if err != nil {
			t.Fatal(err)
		}
		want, err := tc.want.Attribute(context.Background(), []*tensor.Tensor{x}, tc.o)
		if err != nil {
			t.Fatal(err)
		}
		if !tensor.SameShape(got.Shape, want.Attributions[0].Shape) || tensor.MaxAbsDiff(got.F, want.Attributions[0].F) != 0 {
			t.Errorf("%v: CLI output differs from the library's", tc.args)
		}
	}
}

func TestCLIErrors(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "x.npy")
	npy.WriteFile(in, tensor.New(1, 3, 32, 32))
	bad := filepath.Join(dir, "bad.npy")
	npy.WriteFile(bad, tensor.New(1, 3, 30, 32))
	tests := []struct {
		args  []string
		usage bool
		want  string
	}{
		{[]string{"frobnicate"}, true, "unknown command"},
		{[]string{"explain", "--model", cnn, "--input", in, "--method", "Magic"}, true, "unknown method"},
		{[]string{"explain", "--model", cnn, "--input", in, "--method", "Saliency", "--param", "n_steps=3"}, true, "has no parameter"},
		{[]string{"explain", "--model", "missing.onnx", "--input", in}, false, "missing.onnx"},
		{[]string{"explain", "--model", cnn, "--input", bad, "--target", "1"}, true, "has shape [1 3 30 32]"},
		{[]string{"explain", "--model", cnn, "--input", in, "--target", "12"}, false, "out of range"},
		{[]string{"explain", "--model", cnn, "--input", in, "--target", "1;2"}, true, `"1;2"`},
		{[]string{"explain", "--model", cnn, "--input", filepath.Join(dir, "nope.npy")}, false, "nope.npy"},
		{[]string{"layers"}, true, "--model is required"},
		{[]string{"explain", "--model", cnn, "--input", in, "--views", "heat_map,hologram"}, true, "hologram"},
		{[]string{"explain", "--model", cnn, "--input", in, "--views", "masked_image", "--sign", "all"}, true, "not all"},
		{[]string{"explain", "--model", cnn, "--input", in, "--format", "gif"}, true, "--format"},
		{[]string{"explain", "--model", cnn, "--input", in, "--size", "10x10"}, true, "--size"},
		{[]string{"explain", "--model", cnn, "--input", in, "--cmap", "nope"}, true, "nope"},
	}
	for _, tc := range tests {
		msg, err := runCLI(t, tc.args...)
		if err == nil {
			t.Errorf("%v: no error", tc.args)
			continue
		}
		var ue usageError
		if errors.As(err, &ue) != tc.usage {
			t.Errorf("%v: usage error %v, want %v (%v)", tc.args, !tc.usage, tc.usage, err)
		}
		if !strings.Contains(err.Error()+msg, tc.want) {
			t.Errorf("%v: error %q does not mention %q", tc.args, err, tc.want)
		}
	}
}

func TestLayersAndMethods(t *testing.T) {
	out, err := runCLI(t, "layers", "--model", "demo")
	if err != nil || !strings.Contains(out, "conv2") || !strings.Contains(out, "Conv") || !strings.Contains(out, fmt.Sprintf(" %d %d]", demo.Size, demo.Size)) {
		t.Errorf("layers: %v\n%s", err, out)
	}
	out, err = runCLI(t, "methods")
	if err != nil || !strings.Contains(out, "IntegratedGradients") || !strings.Contains(out, "n_steps") {
		t.Errorf("methods: %v\n%s", err, out)
	}
}

// An image input is preprocessed, explained, and drawn.
func TestExplainImage(t *testing.T) {
	dir := t.TempDir()
	img, _ := demo.Draw(2, 9)
	pic, _ := viz.Original(img, 2) // 64x64 PNG of a triangle
	path := filepath.Join(dir, "triangle.png")
	if err := viz.WritePNG(path, pic); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	msg, err := runCLI(t, "explain", "--model", "demo", "--input", path, "--resize", strconv.Itoa(demo.Size), "--method", "IntegratedGradients", "--target", "2", "--sign", "positive", "--format", "both", "--out", out, "--quiet")
	if err != nil {
		t.Fatalf("%v\n%s", err, msg)
	}
	a, err := npy.ReadFile(filepath.Join(out, "attributions_0.npy"))
	if err != nil || !tensor.SameShape(a.Shape, []int{1, 3, demo.Size, demo.Size}) {
		t.Fatalf("attributions %v, %v", a, err)
	}
	// One figure: the heat map and the blended heat map side by side.
	f, err := os.Open(filepath.Join(out, "attributions_triangle.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil || cfg.Width != 1200 || cfg.Height != 600 {
		t.Errorf("figure %dx%d (%v), want two 600x600 views", cfg.Width, cfg.Height, err)
	}
	svg, err := os.ReadFile(filepath.Join(out, "attributions_triangle.svg"))
	if err != nil || !strings.Contains(string(svg), "IntegratedGradients, target 2 (triangle), triangle") || !strings.Contains(string(svg), "blended heat map") {
		t.Errorf("SVG figure without its titles (%v)", err)
	}
	if _, err := runCLI(t, "explain", "--model", "demo", "--input", path, "--crop", "100", "--quiet", "--out", out); err == nil {
		t.Error("crop larger than the image: no error")
	}
}

// Extra inputs feed the model without being attributed.
func TestExplainExtraInput(t *testing.T) {
	dir := t.TempDir()
	x := tensor.New(2, 6)
	mask := tensor.New(2, 6)
	for i := range x.F {
		x.F[i] = float32(i%5) - 2
		if i%3 != 0 {
			mask.F[i] = 1
		}
	}
	npy.WriteFile(filepath.Join(dir, "x.npy"), x)
	npy.WriteFile(filepath.Join(dir, "mask.npy"), mask)
	out := filepath.Join(dir, "out")
	model := testmodels.Path("masked_s0.onnx")
	if msg, err := runCLI(t, "explain", "--model", model, "--input", filepath.Join(dir, "x.npy"), "--extra", "mask="+filepath.Join(dir, "mask.npy"), "--method", "Saliency", "--target", "1", "--out", out, "--quiet"); err != nil {
		t.Fatalf("%v\n%s", err, msg)
	}
	a, err := npy.ReadFile(filepath.Join(out, "attributions_0.npy"))
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range a.F {
		if mask.F[i] == 0 && v != 0 {
			t.Errorf("masked feature %d has attribution %g", i, v)
		}
	}
	if _, err := runCLI(t, "explain", "--model", model, "--input", filepath.Join(dir, "x.npy"), "--extra", "nosuch="+filepath.Join(dir, "mask.npy"), "--quiet", "--out", out); err == nil {
		t.Error("unknown extra input: no error")
	}
}

// A layer's coarse map is drawn upsampled over the image.
func TestExplainGradCAMPicture(t *testing.T) {
	dir := t.TempDir()
	img, _ := demo.Draw(1, 3)
	x, _ := img.Reshape(1, 3, demo.Size, demo.Size)
	in := filepath.Join(dir, "x.npy")
	npy.WriteFile(in, x)
	out := filepath.Join(dir, "out")
	if msg, err := runCLI(t, "explain", "--model", "demo", "--input", in, "--method", "LayerGradCam", "--layer", "pool2", "--param", "relu_attributions=true",
		"--target", "1", "--sign", "positive", "--format", "svg", "--out", out, "--quiet"); err != nil {
		t.Fatalf("%v\n%s", err, msg)
	}
	a, err := npy.ReadFile(filepath.Join(out, "attributions_0.npy"))
	if err != nil || !tensor.SameShape(a.Shape, []int{1, 1, demo.Size / 2, demo.Size / 2}) {
		t.Fatalf("attributions %v (%v), want the layer's resolution", a, err)
	}
	svg, err := os.ReadFile(filepath.Join(out, "attributions_x.svg"))
	if err != nil || !strings.Contains(string(svg), "blended heat map") || !strings.Contains(string(svg), "LayerGradCam, layer pool2, target 1 (disc)") {
		t.Errorf("no blended view of the Grad-CAM map (%v)", err)
	}
}

// --baselines gives the Shap methods their distribution.
func TestExplainBaselineDistribution(t *testing.T) {
	dir := t.TempDir()
	x := tensor.New(2, 3, 32, 32)
	b := tensor.New(3, 3, 32, 32)
	for i := range x.F {
		x.F[i] = float32(i%7) / 7
	}
	for i := range b.F {
		b.F[i] = float32(i%5) / 10
	}
	in, bf := filepath.Join(dir, "x.npy"), filepath.Join(dir, "b.npy")
	npy.WriteFile(in, x)
	npy.WriteFile(bf, b)
	out := filepath.Join(dir, "out")
	if msg, err := runCLI(t, "explain", "--model", cnn, "--input", in, "--baselines", bf, "--method", "DeepLiftShap", "--target", "1", "--format", "none", "--out", out, "--quiet"); err != nil {
		t.Fatalf("%v\n%s", err, msg)
	}
	got, err := npy.ReadFile(filepath.Join(out, "attributions_0.npy"))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := engine.Load(cnn)
	nt, _ := attr.NewNet(m)
	want, err := (&attr.DeepLiftShap{Net: nt}).Attribute(context.Background(), []*tensor.Tensor{x}, attr.Options{Target: attr.Class(1), Baselines: []*tensor.Tensor{b}})
	if err != nil {
		t.Fatal(err)
	}
	if d := tensor.MaxAbsDiff(got.F, want.Attributions[0].F); d != 0 {
		t.Errorf("CLI and library differ by %g", d)
	}
	if _, err := runCLI(t, "explain", "--model", cnn, "--input", in, "--baselines", bf, "--baselines", bf, "--method", "DeepLiftShap", "--target", "1", "--out", out, "--quiet"); err == nil || !strings.Contains(err.Error(), "one per input") {
		t.Errorf("two baselines for one input: %v", err)
	}
}

// Token inputs with --tokens give text pictures of the per-token sums.
func TestExplainText(t *testing.T) {
	dir := t.TempDir()
	tok := tensor.NewInt(2, 7)
	for i := range tok.I {
		tok.I[i] = int64(3*i+1) % 50
	}
	in, tf := filepath.Join(dir, "tokens.npy"), filepath.Join(dir, "tokens.txt")
	npy.WriteFile(in, tok)
	os.WriteFile(tf, []byte("the film was a real <b>treat</b> .\nnot good , not bad either .\n"), 0o644)
	out := filepath.Join(dir, "out")
	model := testmodels.Path("text_s0.onnx")
	msg, err := runCLI(t, "explain", "--model", model, "--input", in, "--method", "LayerIntegratedGradients", "--layer", "emb", "--param", "n_steps=10",
		"--target", "1", "--tokens", tf, "--out", out, "--quiet")
	if err != nil {
		t.Fatalf("%v\n%s", err, msg)
	}
	a, err := npy.ReadFile(filepath.Join(out, "attributions_0.npy"))
	if err != nil {
		t.Fatal(err)
	}
	sums, _ := attr.SumTokens(a)
	page, err := os.ReadFile(filepath.Join(out, "text.html"))
	if err != nil {
		t.Fatal(err)
	}
	// Each token's title holds its share of the example's largest score.
	m := 0.0
	for _, v := range sums.F[:7] {
		m = math.Max(m, math.Abs(float64(v)))
	}
	want := fmt.Sprintf(`title="%.4g">&lt;b&gt;treat&lt;/b&gt;</mark>`, float64(sums.F[5])/m)
	if !strings.Contains(string(page), want) {
		t.Errorf("text.html lacks %s", want)
	}
	if st, err := os.Stat(filepath.Join(out, "text.png")); err != nil || st.Size() < 500 {
		t.Errorf("text.png: %v", err)
	}
	os.WriteFile(tf, []byte("one line only\n"), 0o644)
	if _, err := runCLI(t, "explain", "--model", model, "--input", in, "--method", "LayerIntegratedGradients", "--layer", "emb", "--target", "1", "--tokens", tf, "--out", out, "--quiet"); err == nil || !strings.Contains(err.Error(), "1 lines for 2 examples") {
		t.Errorf("one line of tokens for two examples: %v", err)
	}
}

// --series draws time series with their attributions.
func TestExplainSeries(t *testing.T) {
	dir := t.TempDir()
	x := tensor.New(2, 6)
	for i := range x.F {
		x.F[i] = float32(i%5) - 2
	}
	in := filepath.Join(dir, "x.npy")
	npy.WriteFile(in, x)
	out := filepath.Join(dir, "out")
	model := testmodels.Path("linear_s0.onnx")
	if msg, err := runCLI(t, "explain", "--model", model, "--input", in, "--method", "Saliency", "--target", "0", "--series", "colored_graph", "--out", out, "--quiet"); err != nil {
		t.Fatalf("%v\n%s", err, msg)
	}
	for e := 0; e < 2; e++ {
		svg, err := os.ReadFile(filepath.Join(out, fmt.Sprintf("series_0_%d.svg", e)))
		if err != nil || strings.Count(string(svg), "<line") != 5 {
			t.Errorf("example %d: %d segments (%v), want 5", e, strings.Count(string(svg), "<line"), err)
		}
	}
	if _, err := runCLI(t, "explain", "--model", model, "--input", in, "--method", "Saliency", "--target", "0", "--series", "sideways", "--out", out, "--quiet"); err == nil || !strings.Contains(err.Error(), "sideways") {
		t.Errorf("unknown mode: %v", err)
	}
}

// TestPanicIsInternalError: a panic ended the program with status 2, the
// status of bad usage; run now returns an "internal error" (status 1).
func TestPanicIsInternalError(t *testing.T) {
	err := run(context.Background(), []string{"help"}, nil, nil) // writing to a nil writer panics
	var ue usageError
	if err == nil || !strings.Contains(err.Error(), "internal error") || errors.As(err, &ue) {
		t.Errorf("err %v, want an internal error that is not a usage error", err)
	}
}

// TestHostileInputFiles: an .npy whose shape overflows, a tiny PNG that
// declares 100000x100000 pixels, and hostile counts end in errors that
// name the problem, never a panic.
func TestHostileInputFiles(t *testing.T) {
	dir := t.TempDir()
	h := "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }\n"
	b := append([]byte("\x93NUMPY\x01\x00"), byte(len(h)), byte(len(h)>>8))
	overflow := filepath.Join(dir, "overflow.npy")
	os.WriteFile(overflow, append(b, h...), 0o600)

	var p bytes.Buffer
	png.Encode(&p, image.NewGray(image.Rect(0, 0, 1, 1)))
	bomb := p.Bytes()
	binary.BigEndian.PutUint32(bomb[16:], 100000)
	binary.BigEndian.PutUint32(bomb[20:], 100000)
	binary.BigEndian.PutUint32(bomb[29:], crc32.ChecksumIEEE(bomb[12:29]))
	bombPath := filepath.Join(dir, "bomb.png")
	os.WriteFile(bombPath, bomb, 0o600)

	in := filepath.Join(dir, "x.npy")
	npy.WriteFile(in, tensor.New(1, 3, 32, 32))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"explain", "--model", cnn, "--input", overflow, "--method", "Saliency", "--quiet", "--out", dir}, "elements"},
		{[]string{"explain", "--model", cnn, "--input", bombPath, "--method", "Saliency", "--quiet", "--out", dir}, "pixels"},
		{[]string{"explain", "--model", cnn, "--input", in, "--method", "GradientShap", "--param", "n_samples=-3", "--quiet", "--out", dir}, "n_samples"},
		{[]string{"explain", "--model", cnn, "--input", in, "--method", "IntegratedGradients", "--param", "n_steps=1000000000", "--quiet", "--out", dir}, "n_steps"},
	} {
		err := run(context.Background(), tc.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "internal error") {
			t.Errorf("%v: err %v, want one about %q", tc.args[4], err, tc.want)
		}
	}
}
