// Package demo is loupe's built-in demonstration: a small CNN trained
// (train.py) to tell squares, discs and triangles on noisy backgrounds
// apart, images drawn the same way, and a run of several attribution
// methods whose pictures go into an HTML report. Because the images are
// generated, the right answer is known: the shape's pixels.
package demo

import (
	"context"
	_ "embed"
	"fmt"
	"html/template"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/npy"
	"github.com/loupe-ml/loupe/onnx"
	"github.com/loupe-ml/loupe/tensor"
	"github.com/loupe-ml/loupe/viz"
)

//go:embed shapes_cnn.onnx
var modelBytes []byte

// Size is the side of the demo images.
const Size = 48

// Classes names the demo model's outputs.
var Classes = []string{"square", "disc", "triangle"}

// Model returns the built-in model, compiled.
func Model() (*engine.Model, error) {
	g, err := onnx.Parse(modelBytes)
	if err != nil {
		return nil, fmt.Errorf("demo model: %w", err)
	}
	return engine.Compile(g)
}

// Graph returns the built-in model's graph.
func Graph() (*graph.Graph, error) { return onnx.Parse(modelBytes) }

// ModelBytes returns the built-in model as an ONNX file's contents.
func ModelBytes() []byte { return append([]byte(nil), modelBytes...) }

// Draw draws a shape of the given class (0 square, 1 disc, 2 triangle) on
// a noisy background: an image [3, Size, Size] in [0, 1] and the shape's
// mask [Size*Size], as train.py does.
func Draw(class int, seed uint64) (*tensor.Tensor, []bool) {
	rng := rand.New(rand.NewPCG(seed, 0x73686170))
	img := tensor.New(3, Size, Size)
	for i := range img.F {
		img.F[i] = float32(rng.Float64() * 0.5)
	}
	r := 8 + rng.IntN(6)
	cy := r + 1 + rng.IntN(Size-2*r-2)
	cx := r + 1 + rng.IntN(Size-2*r-2)
	mask := shapeMask(class, cy, cx, r, Size)
	paintMask(img, mask, rng)
	return img, mask
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// Result is one method's outcome on one image.
type Result struct {
	Method string
	// InMask is the share of the positive attribution (summed over
	// channels) that falls on the shape's pixels.
	InMask float64
	Array  string // file name of the attributions (.npy)
}

// Example is one demo image with its results.
type Example struct {
	Class, Predicted string
	Probability      float64
	// Figure and Vector name the example's figure (the image and each
	// method's heat map blended over it) as PNG and SVG files.
	Figure, Vector string
	Results        []Result
}

// Report is what Run produced.
type Report struct {
	Dir      string
	Examples []Example
	// MeanInMask is, per method, the mean share over the examples.
	MeanInMask map[string]float64
	// ChanceInMask is the mean share of the images the shapes cover: what
	// an attribution spread evenly would score.
	ChanceInMask float64
	Methods      []string
}

// methods are the demo's attributions, by name.
func methods(nt *attr.Net) ([]string, map[string]attr.Method) {
	names := []string{"IntegratedGradients", "Saliency", "InputXGradient", "Occlusion", "GuidedGradCam", "GradCAM"}
	return names, map[string]attr.Method{
		"IntegratedGradients": &attr.IntegratedGradients{Net: nt},
		"Saliency":            &attr.Saliency{Net: nt},
		"InputXGradient":      &attr.InputXGradient{Net: nt},
		"Occlusion":           &attr.Occlusion{Model: nt, SlidingWindowShapes: [][]int{{3, 2, 2}}, Strides: [][]int{{3, 1, 1}}, PerturbationsPerEval: 128},
		"GuidedGradCam":       &attr.GuidedGradCam{Net: nt, Layer: "conv3"},
		"GradCAM":             &gradCAM{nt: nt},
	}
}

// gradCAM is LayerGradCam on the last convolution, upsampled to the input.
type gradCAM struct{ nt *attr.Net }

func (g *gradCAM) Attribute(ctx context.Context, inputs []*tensor.Tensor, o attr.Options) (*attr.Result, error) {
	r, err := (&attr.LayerGradCam{Net: g.nt, ReluAttributions: true}).Attribute(ctx, inputs, o)
	if err != nil {
		return nil, err
	}
	up, err := attr.Interpolate(r.Attributions[0], inputs[0].Shape[2:], "bilinear")
	if err != nil {
		return nil, err
	}
	return &attr.Result{Attributions: []*tensor.Tensor{up}}, nil
}

// Run draws perExample images of each class, explains the model's
// prediction with every demo method, and writes pictures, arrays and
// index.html into dir. progress, if set, is called after each method.
func Run(ctx context.Context, dir string, perClass int, progress func(done, total int)) (*Report, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	m, err := Model()
	if err != nil {
		return nil, err
	}
	nt, err := attr.NewNet(m)
	if err != nil {
		return nil, err
	}
	names, meths := methods(nt)
	rep := &Report{Dir: dir, MeanInMask: map[string]float64{}, Methods: names}
	total := 3 * perClass * len(names)
	done := 0
	for class := 0; class < 3; class++ {
		for k := 0; k < perClass; k++ {
			img, mask := Draw(class, uint64(100+10*class+k))
			for _, in := range mask {
				if in {
					rep.ChanceInMask += 1 / float64(len(mask)*3*perClass)
				}
			}
			x, _ := img.Reshape(1, 3, Size, Size)
			p, err := m.Forward(ctx, map[string]*tensor.Tensor{"input": x}, nil)
			if err != nil {
				return nil, err
			}
			y, _ := p.Output(0)
			top, probs, err := attr.TopClasses(y)
			if err != nil {
				return nil, err
			}
			pred, prob := top[0], probs[0]
			id := fmt.Sprintf("%s%d", Classes[class], k)
			ex := Example{Class: Classes[class], Predicted: Classes[pred], Probability: prob, Figure: id + ".png", Vector: id + ".svg"}
			first, err := viz.ImageAttr(tensor.New(Size, Size), img, viz.ImageOptions{Method: viz.MethodOriginalImage,
				Title: fmt.Sprintf("%s: %s (%.2f)", Classes[class], Classes[pred], prob)})
			if err != nil {
				return nil, err
			}
			fig := &viz.Figure{Width: 240 * (1 + len(names)), Height: 280, Panels: first.Panels}
			for _, name := range names {
				r, err := meths[name].Attribute(ctx, []*tensor.Tensor{x}, attr.Options{Target: attr.Class(pred)})
				if err != nil {
					return nil, fmt.Errorf("%s: %w", name, err)
				}
				a := r.Attributions[0]
				a1, _ := a.Reshape(a.Shape[1:]...)
				v, _, _, err := viz.Map2D(a1, false)
				if err != nil {
					return nil, err
				}
				res := Result{Method: name, InMask: shareInMask(v, mask), Array: id + "_" + name + ".npy"}
				sign := viz.Positive
				if name == "Saliency" {
					sign = viz.AbsoluteValue
				}
				view, err := viz.ImageAttr(a1, img, viz.ImageOptions{Method: viz.MethodBlendedHeatMap, Sign: sign, ColorBar: true,
					Title: fmt.Sprintf("%s: %.0f%% on the shape", name, 100*res.InMask)})
				if err != nil {
					return nil, err
				}
				fig.Panels = append(fig.Panels, view.Panels...)
				if err := npy.WriteFile(filepath.Join(dir, res.Array), a); err != nil {
					return nil, err
				}
				ex.Results = append(ex.Results, res)
				rep.MeanInMask[name] += res.InMask / float64(3*perClass)
				done++
				if progress != nil {
					progress(done, total)
				}
			}
			for _, f := range []string{ex.Figure, ex.Vector} {
				if err := fig.WriteFile(filepath.Join(dir, f)); err != nil {
					return nil, err
				}
			}
			rep.Examples = append(rep.Examples, ex)
		}
	}
	if err := writeHTML(rep); err != nil {
		return nil, err
	}
	return rep, nil
}

// shareInMask returns the share of positive attribution inside the mask.
func shareInMask(v []float64, mask []bool) float64 {
	in, all := 0.0, 0.0
	for i, x := range v {
		if x > 0 {
			all += x
			if mask[i] {
				in += x
			}
		}
	}
	if all == 0 {
		return 0
	}
	return in / all
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{"mul": func(x float64) float64 { return 100 * x }}).Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>loupe demo</title>
<style>body{font-family:sans-serif;margin:2em} td{padding:4px 12px} img{max-width:100%}</style>
</head><body>
<h1>loupe demo</h1>
<p>A small CNN tells squares, discs and triangles apart. Each row shows an image, the model's prediction, and what each
attribution method credits for it (green: positive attribution; blue: absolute value), blended over a gray copy of the
image. The share of positive attribution that falls on the shape's pixels is in each title.</p>
{{range .Examples}}<p><a href="{{.Vector}}"><img src="{{.Figure}}" alt="{{.Class}}, predicted {{.Predicted}}"></a></p>
{{end}}
<h2>Mean share of positive attribution on the shape</h2>
<table>{{range $m, $v := .MeanInMask}}<tr><td>{{$m}}</td><td>{{printf "%.2f" $v}}</td></tr>{{end}}
<tr><td>(area of the shapes: an even spread)</td><td>{{printf "%.2f" .ChanceInMask}}</td></tr></table>
</body></html>
`))

func writeHTML(rep *Report) error {
	f, err := os.Create(filepath.Join(rep.Dir, "index.html"))
	if err != nil {
		return err
	}
	if err := page.Execute(f, rep); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// shapeMask returns the pixels of a size×size picture inside a shape of
// class kind (0 square, 1 disk, 2 triangle) of radius r centred at (cy, cx).
func shapeMask(kind, cy, cx, r, size int) []bool {
	mask := make([]bool, size*size)
	for y := 0; y < size; y++ {
		for x := 0; x < size; x++ {
			dy, dx := y-cy, x-cx
			var in bool
			switch kind {
			case 0:
				in = abs(dy) <= r && abs(dx) <= r
			case 1:
				in = dy*dy+dx*dx <= r*r
			default:
				in = y >= cy-r && y <= cy+r && float64(abs(dx)) <= float64(y-(cy-r))/2
			}
			mask[y*size+x] = in
		}
	}
	return mask
}

// paintMask colours the masked pixels of img ([3, size, size]) with one
// random pale colour.
func paintMask(img *tensor.Tensor, mask []bool, rng *rand.Rand) {
	plane := len(mask)
	for c := 0; c < 3; c++ {
		col := float32(0.6 + 0.4*rng.Float64())
		for i, in := range mask {
			if in {
				img.F[c*plane+i] = col
			}
		}
	}
}
