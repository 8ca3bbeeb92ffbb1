package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/internal/demo"
	"github.com/loupe-ml/loupe/internal/testmodels"
	"github.com/loupe-ml/loupe/npy"
	"github.com/loupe-ml/loupe/tensor"
	"github.com/loupe-ml/loupe/viz"
)

// runSplit runs the command line with stdout and stderr kept apart.
func runSplit(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	err = run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

// writeShape writes demo shape class (seed seed) as a PNG of scale times
// the model's size, and returns its pixels at the model's size.
func writeShape(t *testing.T, path string, class int, seed uint64, scale int) *tensor.Tensor {
	t.Helper()
	img, _ := demo.Draw(class, seed)
	pic, err := viz.Original(img, scale)
	if err == nil {
		err = viz.WritePNG(path, pic)
	}
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// A folder of pictures is one batch: each example's prediction is printed
// (top classes with probabilities, named), its predicted class explained
// by default, and its figure named after its file and titled with the
// method, the target's name and the example.
func TestExplainFolderPredicted(t *testing.T) {
	dir := t.TempDir()
	pics := filepath.Join(dir, "pics")
	os.Mkdir(pics, 0o755)
	writeShape(t, filepath.Join(pics, "a_disc.png"), 1, 3, 1)
	writeShape(t, filepath.Join(pics, "b_triangle.png"), 2, 4, 1)
	os.WriteFile(filepath.Join(pics, "notes.txt"), []byte("not a picture"), 0o644)
	out := filepath.Join(dir, "out")
	stdout, stderr, err := runSplit(t, "explain", "--model", "demo", "--input", pics, "--method", "Saliency", "--format", "svg", "--out", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	for _, want := range []string{"a_disc      predicted 1 disc (", "b_triangle  predicted 2 triangle (", "; top 3: 1 disc 0.99"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	// The library, on the same batch, with the predicted classes.
	m, _ := demo.Model()
	nt, _ := attr.NewNet(m)
	got, err := npy.ReadFile(filepath.Join(out, "attributions_0.npy"))
	if err != nil || !tensor.SameShape(got.Shape, []int{2, 3, demo.Size, demo.Size}) {
		t.Fatalf("attributions %v, %v: want one batch of 2", got, err)
	}
	x := tensor.New(2, 3, demo.Size, demo.Size)
	for e, c := range [][2]int{{1, 3}, {2, 4}} {
		img, _ := demo.Draw(c[0], uint64(c[1]))
		copy(x.F[e*img.Len():], img.F)
	}
	// The PNG round trip quantizes pixels to 8 bits: compare with the
	// quantized batch.
	for i, v := range x.F {
		x.F[i] = float32(uint8(255*v)) / 255
	}
	want, _ := (&attr.Saliency{Net: nt}).Attribute(context.Background(), []*tensor.Tensor{x}, attr.Options{Target: attr.Classes(1, 2)})
	if d := tensor.MaxAbsDiff(got.F, want.Attributions[0].F); d > 1e-5 {
		t.Errorf("CLI attributions differ from the library's on the predicted classes by %g", d)
	}
	for file, title := range map[string]string{"attributions_a_disc.svg": "Saliency, target 1 (disc), a_disc", "attributions_b_triangle.svg": "Saliency, target 2 (triangle), b_triangle"} {
		svg, err := os.ReadFile(filepath.Join(out, file))
		if err != nil || !strings.Contains(string(svg), title) || !strings.Contains(string(svg), "(absolute value)") {
			t.Errorf("%s: %v, want the title %q and the sign", file, err, title)
		}
	}
	if !strings.Contains(stderr, "Saliency: 2/2 done") || strings.Contains(stderr, "\r") {
		t.Errorf("progress off a terminal: %q, want one plain line", stderr)
	}

	// Two --input files are the same batch; --target pred the same target;
	// --classes names the classes.
	names := filepath.Join(dir, "names.txt")
	os.WriteFile(names, []byte("Square\nDisc\nTriangle\n"), 0o644)
	out2 := filepath.Join(dir, "out2")
	stdout, stderr, err = runSplit(t, "explain", "--model", "demo", "--input", filepath.Join(pics, "a_disc.png"), "--input", filepath.Join(pics, "b_triangle.png"),
		"--method", "Saliency", "--target", "pred", "--classes", names, "--top", "2", "--format", "none", "--out", out2, "--quiet")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if !strings.Contains(stdout, "predicted 1 Disc (") || !strings.Contains(stdout, "top 2:") || strings.Contains(stdout, "top 3") {
		t.Errorf("--classes, --top 2: %s", stdout)
	}
	got2, err := npy.ReadFile(filepath.Join(out2, "attributions_0.npy"))
	if err != nil || tensor.MaxAbsDiff(got.F, got2.F) != 0 {
		t.Errorf("two --input files differ from their folder (%v)", err)
	}

	// Pictures of different sizes do not make a batch: say how to fix it.
	writeShape(t, filepath.Join(pics, "c_big.png"), 0, 5, 2)
	_, _, err = runSplit(t, "explain", "--model", "demo", "--input", pics, "--out", out, "--quiet")
	var ue usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "c_big.png") || !strings.Contains(err.Error(), "--resize") {
		t.Errorf("pictures of two sizes: %v", err)
	}
}

// Hints: a picture of the wrong size gets the flags that fix it, a
// misspelt method or parameter the nearest names, a --layer the method
// ignores a warning; errors speak of the user's batch.
func TestExplainHints(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.png")
	writeShape(t, big, 1, 1, 2)
	out := filepath.Join(dir, "out")
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"--input", big}, []string{"has shape [1 3 96 96]", "[N 3 48 48]", "--resize 54 --crop 48"}},
		{[]string{"--input", big, "--preset", "imagenet"}, []string{"has shape [1 3 224 224]"}},
		{[]string{"--input", big, "--preset", "cifar"}, []string{"--preset", "imagenet"}},
		{[]string{"--input", big, "--method", "IntegratedGradient"}, []string{"did you mean IntegratedGradients?"}},
		{[]string{"--input", big, "--method", "IntegratedGradients", "--param", "n_step=3"}, []string{"did you mean n_steps?"}},
	}
	for _, tc := range tests {
		args := append([]string{"explain", "--model", "demo", "--out", out, "--quiet"}, tc.args...)
		_, _, err := runSplit(t, args...)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: %v, want a usage error", tc.args, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q lacks %q", tc.args, err, w)
			}
		}
	}
	small := filepath.Join(dir, "small.png")
	writeShape(t, small, 1, 1, 1)
	_, stderr, err := runSplit(t, "explain", "--model", "demo", "--input", small, "--method", "Saliency", "--layer", "conv2", "--format", "none", "--out", out, "--quiet")
	if err != nil || !strings.Contains(stderr, "Saliency takes no layer: --layer conv2 is ignored") {
		t.Errorf("--layer with Saliency: %v, stderr %q", err, stderr)
	}
	_, stderr, err = runSplit(t, "explain", "--model", "demo", "--input", small, "--method", "GradCAM", "--layer", "conv2", "--format", "none", "--out", out, "--quiet")
	if err != nil || strings.Contains(stderr, "ignored") {
		t.Errorf("--layer with GradCAM: %v, stderr %q", err, stderr)
	}
}

// Each method is drawn in its own sign by default; an empty map is said
// so, with a warning; masked views get no color bar.
func TestExplainSignsAndEmptyMaps(t *testing.T) {
	dir := t.TempDir()
	pic := filepath.Join(dir, "disc.png")
	writeShape(t, pic, 1, 2, 1)
	for method, sign := range map[string]string{"GradCAM": "(positive part)", "IntegratedGradients": "(both signs)", "Saliency": "(absolute value)"} {
		out := filepath.Join(dir, method)
		if _, stderr, err := runSplit(t, "explain", "--model", "demo", "--input", pic, "--method", method, "--param", paramFor(method), "--format", "svg", "--out", out, "--quiet"); err != nil {
			t.Fatalf("%s: %v\n%s", method, err, stderr)
		}
		svg, err := os.ReadFile(filepath.Join(out, "attributions_disc.svg"))
		if err != nil || !strings.Contains(string(svg), "heat map "+sign) {
			t.Errorf("%s: figure without %q (%v)", method, sign, err)
		}
		if method == "GradCAM" && !strings.Contains(string(svg), "layer conv3") {
			t.Errorf("GradCAM: the title does not name the layer it defaulted to")
		}
	}
	// Inputs of zeros: input times gradient is zero everywhere.
	zeros := filepath.Join(dir, "zeros.npy")
	npy.WriteFile(zeros, tensor.New(1, 3, demo.Size, demo.Size))
	out := filepath.Join(dir, "zero")
	_, stderr, err := runSplit(t, "explain", "--model", "demo", "--input", zeros, "--method", "InputXGradient", "--format", "svg", "--out", out, "--quiet")
	if err != nil || !strings.Contains(stderr, "warning: input 0, zeros: the attributions are all zero") {
		t.Errorf("all-zero map: %v, stderr %q", err, stderr)
	}
	svg, _ := os.ReadFile(filepath.Join(out, "attributions_zeros.svg"))
	if !strings.Contains(string(svg), "(all zero)") || strings.Contains(string(svg), "linearGradient") {
		t.Error("an all-zero map's figure does not say so, or has a color bar")
	}
	// Masked views: no color bar; the heat map beside it keeps its own.
	out = filepath.Join(dir, "masked")
	if _, stderr, err := runSplit(t, "explain", "--model", "demo", "--input", pic, "--method", "Saliency", "--views", "masked_image,alpha_scaling", "--format", "svg", "--out", out, "--quiet"); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if svg, _ := os.ReadFile(filepath.Join(out, "attributions_disc.svg")); strings.Contains(string(svg), "linearGradient") {
		t.Error("masked and alpha-scaled views with a color bar")
	}
}

func paramFor(method string) string {
	if method == "IntegratedGradients" {
		return "n_steps=8"
	}
	if method == "Saliency" {
		return "abs=true"
	}
	return "eigen_smooth=false"
}

// loupe layers lists the inputs, aligns its columns, folds the shape
// computations of recurrent exports, and names modules as PyTorch does.
func TestLayersListing(t *testing.T) {
	out, _, err := runSplit(t, "layers", "--model", "demo")
	if err != nil || !strings.Contains(out, "inputs:\n  name   type     shape\n  input  float32  [batch 3 48 48]\n") {
		t.Errorf("inputs of the demo model: %v\n%s", err, out)
	}
	// Columns: each row's op starts where the header's does.
	_, table, _ := strings.Cut(out, "layers (")
	lines := strings.Split(strings.TrimSpace(table), "\n")[1:]
	col := strings.Index(lines[0], "op")
	for _, l := range lines[1:] {
		if len(l) <= col || l[col-1] != ' ' || l[col] == ' ' {
			t.Errorf("row %q not aligned on column %d", l, col)
		}
	}
	seq := testmodels.Engine("seq_op17.onnx")
	out, _, err = runSplit(t, "layers", "--model", seq)
	if err != nil || !strings.Contains(out, "(5 shape computations: Shape, Gather, Unsqueeze, Concat, ConstantOfShape; --all lists them)") || strings.Contains(out, " Gather ") {
		t.Errorf("recurrent model, folded: %v\n%s", err, out)
	}
	out, _, err = runSplit(t, "layers", "--model", seq, "--all")
	if err != nil || !strings.Contains(out, "ConstantOfShape") || strings.Contains(out, "shape computations") {
		t.Errorf("--all: %v\n%s", err, out)
	}
	rn := testmodels.ResNet18()
	if rn == "" || testing.Short() {
		t.Skip("no ResNet18 (or -short)")
	}
	out, _, err = runSplit(t, "layers", "--model", rn)
	if err != nil || !strings.Contains(out, "\n  layer2.0.downsample.0  ") || strings.Contains(out, "downsample.downsample") {
		t.Errorf("ResNet18's modules: %v", err)
	}
	dir := t.TempDir()
	npy.WriteFile(filepath.Join(dir, "x.npy"), tensor.New(1, 3, 224, 224))
	if _, stderr, err := runSplit(t, "explain", "--model", rn, "--input", filepath.Join(dir, "x.npy"), "--method", "LayerActivation", "--layer", "layer2.0.downsample.0",
		"--target", "0", "--top", "0", "--format", "none", "--out", dir, "--quiet"); err != nil {
		t.Errorf("--layer layer2.0.downsample.0: %v\n%s", err, stderr)
	}
	if a, err := npy.ReadFile(filepath.Join(dir, "attributions_0.npy")); err != nil || !tensor.SameShape(a.Shape, []int{1, 128, 28, 28}) {
		t.Errorf("layer2.0.downsample.0's activations: %v, %v", a, err)
	}
}

// Off a terminal, progress is one plain line at the end.
func TestProgressOffTerminal(t *testing.T) {
	var b bytes.Buffer
	p := progressBar(&b, "IntegratedGradients", false)
	for i := 1; i <= 4; i++ {
		p(i, 4)
	}
	if got := b.String(); strings.Contains(got, "\r") || strings.Count(got, "\n") != 1 || !strings.HasPrefix(got, "IntegratedGradients: 4/4 done in ") {
		t.Errorf("progress into a buffer: %q", got)
	}
	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("a file is a terminal")
	}
	if progressBar(&b, "x", true) != nil {
		t.Error("--quiet draws progress")
	}
}

// A map with nothing of the sign drawn (Grad-CAM's all negative, drawn
// positive) is warned about, with its sum; a map with some is not.
func TestWarnEmpty(t *testing.T) {
	a, _ := tensor.FromFloat32([]float32{-1, -2, -3, -4, 1, -2, 3, 0}, 2, 4)
	in := &batchInputs{names: []string{"cat", "dog"}}
	var b bytes.Buffer
	warnEmpty(&b, a, in, 0, viz.Positive)
	if got := b.String(); got != "warning: input 0, cat: no positive attribution to draw (the map sums to -10); --sign all shows both signs\n" {
		t.Errorf("warnings %q", got)
	}
	b.Reset()
	warnEmpty(&b, a, in, 0, viz.All)
	if b.Len() != 0 {
		t.Errorf("sign all: %q", b.String())
	}
}

// --views masked_image without --sign takes the positive part of a
// method whose own sign is both (masks show magnitudes).
func TestMaskedViewDefaultSign(t *testing.T) {
	dir := t.TempDir()
	pic := filepath.Join(dir, "disc.png")
	writeShape(t, pic, 1, 2, 1)
	if _, stderr, err := runSplit(t, "explain", "--model", "demo", "--input", pic, "--param", "n_steps=4", "--views", "masked_image", "--format", "none", "--out", dir, "--quiet"); err != nil {
		t.Errorf("IntegratedGradients with --views masked_image: %v\n%s", err, stderr)
	}
}

// A misspelt flag gets the nearest ones.
func TestMisspeltFlag(t *testing.T) {
	_, _, err := runSplit(t, "explain", "--model", "demo", "--targt", "3")
	var ue usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "did you mean --target?") {
		t.Errorf("--targt: %v", err)
	}
	if _, _, err := runSplit(t, "layers", "--modle", "demo"); err == nil || !strings.Contains(err.Error(), "did you mean --model?") {
		t.Errorf("--modle: %v", err)
	}
}
