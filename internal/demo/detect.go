package demo

import (
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/detect"
	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/metrics"
	"github.com/loupe-ml/loupe/npy"
	"github.com/loupe-ml/loupe/onnx"
	"github.com/loupe-ml/loupe/tensor"
	"github.com/loupe-ml/loupe/viz"
)

// The demo detector (detect_train.py, seed 0): raw grid outputs
// [N, 8, 8, 8] decoded by detect_config.json.
var (
	//go:embed shapes_det.onnx
	detBytes []byte
	//go:embed detect_config.json
	detConfig []byte
)

// DetectorBytes returns the demo detector as an ONNX file's contents.
func DetectorBytes() []byte { return append([]byte(nil), detBytes...) }

// DetectorConfigJSON returns the demo detector's decoding configuration
// as JSON (detect.LoadConfig reads it from a file).
func DetectorConfigJSON() []byte { return append([]byte(nil), detConfig...) }

// Detector returns the demo detector, compiled, with its configuration.
func Detector() (*detect.Detector, error) {
	g, err := onnx.Parse(detBytes)
	if err != nil {
		return nil, fmt.Errorf("demo detector: %w", err)
	}
	m, err := engine.Compile(g)
	if err != nil {
		return nil, fmt.Errorf("demo detector: %w", err)
	}
	nt, err := attr.NewNet(m)
	if err != nil {
		return nil, err
	}
	var c detect.Config
	if err := json.Unmarshal(detConfig, &c); err != nil {
		return nil, fmt.Errorf("demo detector config: %w", err)
	}
	if err := c.Check(); err != nil {
		return nil, fmt.Errorf("demo detector config: %w", err)
	}
	return &detect.Detector{Net: nt, Config: c, ScoreThreshold: 0.5}, nil
}

// DetectionLayer is the demo detector's layer for GradCAM: the last
// convolution before the head, after its ReLU (the head itself is a
// convolution too, but its channels are the box, objectness and class
// numbers, not features).
const DetectionLayer = "/Relu_3_output_0"

// DetectionMethods are the per-box explanations of the detection demo.
var DetectionMethods = []string{"GradCAM", "HiResCAM", "Saliency", "D-RISE"}

// BoxResult is one detection of a scene with its explanations.
type BoxResult struct {
	detect.Detection
	// Object is the index of the scene's object the detection matches
	// (same class, IoU at least 0.5), or -1.
	Object int
	IoU    float64
	// Hits tells, per method, whether the map's maximum lies inside the
	// matched object's box (the pointing game).
	Hits map[string]bool
}

// SceneResult is one scene of the detection demo.
type SceneResult struct {
	Seed    uint64
	Objects []Object
	Boxes   []BoxResult
	Figure  string
	Vector  string
	Arrays  map[string]string // per method, the maps [boxes, H, W] (.npy)
}

// DetectionReport is what RunDetection produced.
type DetectionReport struct {
	Dir     string
	Scenes  []SceneResult
	Methods []string
	// Objects, Found and False count the scenes' objects, the objects
	// matched by a detection and the detections that match none.
	Objects, Found, False int
	// Pointing is, per method, the share of matched detections whose map
	// peaks inside the object's box; Chance is the mean share of the
	// image those boxes cover (what a random peak would score).
	Pointing map[string]float64
	Chance   float64
}

// DetectionOptions tunes RunDetection.
type DetectionOptions struct {
	// Scenes is the number of scenes (0: 6); they are drawn with seeds
	// FirstSeed, FirstSeed+1, ...
	Scenes    int
	FirstSeed uint64
	// Masks is D-RISE's number of masks (0: 1000).
	Masks int
	// Layer is GradCAM's layer (empty: DetectionLayer).
	Layer string
	// Figures: write each scene's figure and arrays (the localisation
	// check alone needs none).
	Figures bool
}

// RunDetection draws scenes, detects their shapes with the demo detector,
// explains each detection with GradCAM (the box's score through the last
// convolution, FoxAI's LayerGradCAMObjectDetection), HiResCAM (the same
// with the gradient applied element by element), Saliency (the
// gradient of the box's score) and D-RISE, and scores each map with the
// pointing game on the detection's object. With o.Figures it writes one
// figure per scene (the boxes, then each box's maps) and index.html into
// dir. progress, if set, is called after each scene.
func RunDetection(ctx context.Context, dir string, o DetectionOptions, progress func(done, total int)) (*DetectionReport, error) {
	if o.Scenes == 0 {
		o.Scenes = 6
	}
	if o.Scenes < 0 || o.Scenes > 100000 {
		return nil, fmt.Errorf("demo: %d scenes", o.Scenes)
	}
	if o.Figures {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	d, err := Detector()
	if err != nil {
		return nil, err
	}
	rep := &DetectionReport{Dir: dir, Methods: DetectionMethods, Pointing: map[string]float64{}}
	matched := 0
	for k := 0; k < o.Scenes; k++ {
		seed := o.FirstSeed + uint64(k)
		img, objs := Scene(seed)
		x, _ := img.Reshape(1, 3, SceneSize, SceneSize)
		all, err := d.Detect(ctx, x)
		if err != nil {
			return nil, err
		}
		dets := all[0]
		sr := SceneResult{Seed: seed, Objects: objs, Arrays: map[string]string{}}
		rep.Objects += len(objs)
		found := make([]bool, len(objs))
		for _, dt := range dets {
			br := BoxResult{Detection: dt, Object: -1, Hits: map[string]bool{}}
			for i, ob := range objs {
				if v, _ := attr.IoU(dt.Box, ob.Box); ob.Class == dt.Class && v >= 0.5 && v > br.IoU {
					br.Object, br.IoU = i, v
				}
			}
			if br.Object < 0 {
				rep.False++
			} else if !found[br.Object] {
				found[br.Object] = true
				rep.Found++
			}
			sr.Boxes = append(sr.Boxes, br)
		}
		maps := map[string]*tensor.Tensor{}
		if len(dets) > 0 {
			if maps["GradCAM"], err = d.GradCAM(ctx, x, dets, cmp.Or(o.Layer, DetectionLayer), false); err != nil {
				return nil, err
			}
			layer := cmp.Or(o.Layer, DetectionLayer)
			r, err := d.Explain(ctx, &attr.HiResCAM{Net: d.Net, Layers: []string{layer}}, x, dets, false)
			if err != nil {
				return nil, err
			}
			maps["HiResCAM"] = r.Attributions[0]
			r, err = d.Explain(ctx, &attr.Saliency{Net: d.Net}, x, dets, false)
			if err != nil {
				return nil, err
			}
			if maps["Saliency"], err = channelSum(r.Attributions[0]); err != nil {
				return nil, err
			}
			dr := &detect.DRISE{Detector: d, Masks: o.Masks, Cells: 8, Seed: seed}
			if maps["D-RISE"], err = dr.Attribute(ctx, x, dets); err != nil {
				return nil, err
			}
		}
		for i := range sr.Boxes {
			br := &sr.Boxes[i]
			if br.Object < 0 {
				continue
			}
			matched++
			box := tensor.New(1, SceneSize, SceneSize)
			b := objs[br.Object].Box
			for y := int(b[1]); y < int(b[3]); y++ {
				for xx := int(b[0]); xx < int(b[2]); xx++ {
					box.F[y*SceneSize+xx] = 1
				}
			}
			rep.Chance += (b[2] - b[0]) * (b[3] - b[1]) / (SceneSize * SceneSize)
			for _, m := range rep.Methods {
				one := tensor.New(1, SceneSize, SceneSize)
				copy(one.F, maps[m].F[i*SceneSize*SceneSize:])
				hits, err := metrics.PointingGame(one, box)
				if err != nil {
					return nil, err
				}
				br.Hits[m] = hits[0]
				if hits[0] {
					rep.Pointing[m]++
				}
			}
		}
		if o.Figures {
			if err := sceneFigure(dir, &sr, img, maps); err != nil {
				return nil, err
			}
		}
		rep.Scenes = append(rep.Scenes, sr)
		if progress != nil {
			progress(k+1, o.Scenes)
		}
	}
	if matched > 0 {
		for m := range rep.Pointing {
			rep.Pointing[m] /= float64(matched)
		}
		rep.Chance /= float64(matched)
	}
	if o.Figures {
		if err := writeDetectionHTML(rep); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// channelSum returns a gradient [N, C, H, W]'s absolute values summed over
// channels, [N, H, W].
func channelSum(g *tensor.Tensor) (*tensor.Tensor, error) {
	if g.Rank() != 4 {
		return nil, fmt.Errorf("demo: gradient of shape %v", g.Shape)
	}
	n, c, hw := g.Shape[0], g.Shape[1], g.Shape[2]*g.Shape[3]
	s := tensor.New(n, g.Shape[2], g.Shape[3])
	for e := 0; e < n; e++ {
		for ch := 0; ch < c; ch++ {
			for p := 0; p < hw; p++ {
				v := g.F[(e*c+ch)*hw+p]
				if v < 0 {
					v = -v
				}
				s.F[e*hw+p] += v
			}
		}
	}
	return s, nil
}

// classColors are the demo's box colors, by class.
var classColors = []color.RGBA{{230, 60, 60, 255}, {40, 160, 230, 255}, {250, 200, 30, 255}}

// sceneFigure writes a scene's figure (DetectionFigure) and its maps as
// .npy files.
func sceneFigure(dir string, sr *SceneResult, img *tensor.Tensor, maps map[string]*tensor.Tensor) error {
	id := fmt.Sprintf("scene%d", sr.Seed)
	sr.Figure, sr.Vector = id+".png", id+".svg"
	dets := make([]detect.Detection, len(sr.Boxes))
	hits := make([]map[string]bool, len(sr.Boxes))
	for i, b := range sr.Boxes {
		dets[i], hits[i] = b.Detection, b.Hits
	}
	title := fmt.Sprintf("scene %d: %d objects, %d detections", sr.Seed, len(sr.Objects), len(sr.Boxes))
	fig, err := DetectionFigure(title, img, dets, DetectionMethods, maps, hits)
	if err != nil {
		return err
	}
	for _, f := range []string{sr.Figure, sr.Vector} {
		if err := fig.WriteFile(filepath.Join(dir, f)); err != nil {
			return err
		}
	}
	for _, m := range DetectionMethods {
		if maps[m] == nil {
			continue
		}
		name := id + "_" + m + ".npy"
		if err := npy.WriteFile(filepath.Join(dir, name), maps[m]); err != nil {
			return err
		}
		sr.Arrays[m] = name
	}
	return nil
}

// DetectionFigure draws an image [C, H, W] (values in [0, 1]) with its
// detections, then a row per detection: the image with that box, and each
// method's map of the box blended over the image (maps[method] is
// [len(dets), H, W], or [len(dets), C, H, W], summed over channels in
// absolute value; each map is shown above its minimum). hits, if given,
// notes per detection and method whether the map's peak is in the box.
func DetectionFigure(title string, img *tensor.Tensor, dets []detect.Detection, methods []string, maps map[string]*tensor.Tensor, hits []map[string]bool) (*viz.Figure, error) {
	if img.Rank() != 3 {
		return nil, fmt.Errorf("demo: image of shape %v, want [C, H, W]", img.Shape)
	}
	h, w := img.Shape[1], img.Shape[2]
	scale := max(1, 256/max(h, w))
	pic, err := viz.Original(img, scale)
	if err != nil {
		return nil, err
	}
	color := func(d detect.Detection) color.RGBA { return classColors[d.Class%len(classColors)] }
	marks := make([]viz.BoxMark, len(dets))
	for i, d := range dets {
		marks[i] = viz.BoxMark{Box: d.Box, Color: color(d), Label: fmt.Sprintf("%d %s %.2f", i, d.Label, d.Score)}
	}
	viz.DrawBoxes(pic, marks, scale)
	cols := 1 + len(methods)
	fig := &viz.Figure{Title: title, Width: 220 * cols, Height: 60 + 240*(1+len(dets)), Cols: cols}
	fig.Panels = append(fig.Panels, viz.Panel{Title: "detections", Picture: pic})
	for range methods {
		fig.Panels = append(fig.Panels, viz.Panel{})
	}
	hw := h * w
	for i, d := range dets {
		mark := []viz.BoxMark{{Box: d.Box, Color: color(d)}}
		one, err := viz.Original(img, scale)
		if err != nil {
			return nil, err
		}
		viz.DrawBoxes(one, mark, scale)
		fig.Panels = append(fig.Panels, viz.Panel{Title: fmt.Sprintf("box %d: %s %.2f", i, d.Label, d.Score), Picture: one})
		for _, m := range methods {
			a := maps[m]
			if a == nil || a.Rank() < 3 || a.Shape[0] != len(dets) || a.Len()%(len(dets)*hw) != 0 {
				var s []int
				if a != nil {
					s = a.Shape
				}
				return nil, fmt.Errorf("demo: %s's maps have shape %v for %d detections of %dx%d", m, s, len(dets), h, w)
			}
			a = a.AsFloat32()
			ch := a.Len() / (len(dets) * hw)
			v := make([]float64, hw)
			for c := 0; c < ch; c++ {
				for p := range v {
					x := float64(a.F[(i*ch+c)*hw+p])
					if ch > 1 {
						x = math.Abs(x)
					}
					v[p] += x
				}
			}
			lo := slices.Min(v)
			for p := range v {
				v[p] -= lo // D-RISE's maps sit on a floor: show what rises above it
			}
			v = viz.Normalize(v, viz.Positive, 2)
			p, err := viz.Blend(img, v, h, w, viz.Positive, 0.6, scale)
			if err != nil {
				return nil, err
			}
			viz.DrawBoxes(p, mark, scale)
			t := m
			if i < len(hits) {
				if hit, ok := hits[i][m]; ok {
					t += map[bool]string{true: " (peak in box)", false: " (peak outside)"}[hit]
				}
			}
			fig.Panels = append(fig.Panels, viz.Panel{Title: t, Picture: p})
		}
	}
	return fig, nil
}

var detPage = template.Must(template.New("detection").Funcs(template.FuncMap{"pct": func(x float64) string { return fmt.Sprintf("%.0f%%", 100*x) }}).Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>loupe detection demo</title>
<style>body{font-family:sans-serif;margin:2em} td{padding:4px 12px} img{max-width:100%}</style>
</head><body>
<h1>loupe detection demo</h1>
<p>A small YOLO-style detector finds squares, discs and triangles. Each figure shows a scene with its detections
(class and score), then, for each detection, what GradCAM (the box's score through the last convolution), HiResCAM
(the same, gradient times activation element by element), Saliency
(the gradient of the box's score) and D-RISE (random masks, black box) credit for it. A map "points" at its object
when its maximum lies inside the object's box.</p>
<p>{{.Found}} of {{.Objects}} objects found; {{.False}} detections match no object.</p>
<table><tr><th>method</th><th>pointing game</th></tr>{{range $m, $v := .Pointing}}<tr><td>{{$m}}</td><td>{{pct $v}}</td></tr>{{end}}
<tr><td>(chance: the boxes' share of the image)</td><td>{{pct .Chance}}</td></tr></table>
{{range .Scenes}}<p><a href="{{.Vector}}"><img src="{{.Figure}}" alt="scene {{.Seed}}"></a></p>
{{end}}
</body></html>
`))

func writeDetectionHTML(rep *DetectionReport) error {
	f, err := os.Create(filepath.Join(rep.Dir, "index.html"))
	if err != nil {
		return err
	}
	if err := detPage.Execute(f, rep); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
