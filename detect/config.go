package detect

import (
	"encoding/json"
	"fmt"
	"math"
	"os"

	"github.com/loupe-ml/loupe/attr"
)

// Layouts of a detector's output (Config.Layout).
const (
	// Grid is a raw grid output [N, A*K, H, W] (a YOLO head's convolution
	// before decoding): per anchor a, K = 4 box numbers, an objectness
	// when Config.Objectness is set, then one logit per class; prediction
	// (a*H + gy)*W + gx is anchor a of cell (gx, gy).
	Grid = "grid"
	// Rows is a decoded output [N, P, K], one prediction a row (YOLOv5
	// exports: centre x, centre y, width, height, objectness, classes).
	Rows = "rows"
	// Columns is a decoded output [N, K, P], one prediction a column
	// (YOLOv8 exports: centre x, centre y, width, height, classes).
	Columns = "columns"
)

// Box decodings of a raw grid (Config.Decoding), with σ the sigmoid, (gx,
// gy) the cell, s the stride and (aw, ah) the anchor (the stride when
// there is no anchor):
const (
	// YOLOv5: cx = (2σ(tx) - 0.5 + gx)·s, w = (2σ(tw))²·aw.
	YOLOv5 = "yolov5"
	// YOLOv3: cx = (σ(tx) + gx)·s, w = exp(tw)·aw.
	YOLOv3 = "yolov3"
)

// Config declares how to read boxes, scores and classes out of a
// detector's output, so that the decoding runs in Go. It is read from JSON
// (LoadConfig) with the field names in the tags.
type Config struct {
	// Layout is Grid, Rows or Columns.
	Layout string `json:"layout"`
	// Classes names the classes; their count must match the output.
	Classes []string `json:"classes"`
	// Objectness: each prediction has an objectness score after its box;
	// a class's score is the objectness times the class's.
	Objectness bool `json:"objectness"`
	// Corners (Rows and Columns): boxes are x1, y1, x2, y2 rather than
	// centre and size.
	Corners bool `json:"corners,omitempty"`
	// Stride (Grid): input pixels per cell; 0 takes the input's width over
	// the grid's.
	Stride float64 `json:"stride,omitempty"`
	// Anchors (Grid): width and height in input pixels of each anchor, in
	// the order of the output's channel groups; none: anchor-free, one
	// prediction per cell.
	Anchors [][2]float64 `json:"anchors,omitempty"`
	// Decoding (Grid): YOLOv5 (the default) or YOLOv3.
	Decoding string `json:"decoding,omitempty"`
	// Sigmoid (Grid): apply the sigmoid to the objectness and class
	// logits (a head that outputs probabilities leaves it unset).
	Sigmoid bool `json:"sigmoid,omitempty"`
	// InputWidth (Grid): the input's width in pixels, for the stride when
	// Stride is 0.
	InputWidth int `json:"input_width,omitempty"`
	// Levels (Grid): the outputs of a multi-level head, one raw grid per
	// stride (a YOLOv5 model exported without its Detect layer's
	// concatenation), in the order their predictions are numbered. Stride
	// and Anchors are then given per level, and the model's output must be
	// the levels joined (Join, Open): one flat [N, T] output, each level's
	// [A*K, H, W] numbers one after the other.
	Levels []Level `json:"levels,omitempty"`
}

// Level is one output of a multi-level grid head (Config.Levels).
type Level struct {
	// Output names the model's output that holds the level [N, A*K, H, W].
	Output string `json:"output"`
	// Stride is the level's input pixels per cell.
	Stride float64 `json:"stride"`
	// Anchors are the level's anchors (width, height in input pixels), in
	// the order of its channel groups; none: anchor-free.
	Anchors [][2]float64 `json:"anchors,omitempty"`
	// Grid is the level's height and width in cells; zero: Join reads it
	// from the output's shape declared in the model.
	Grid [2]int `json:"grid,omitempty"`
}

// anchors returns the level's number of anchors (1 when anchor-free).
func (l Level) anchors() int { return max(len(l.Anchors), 1) }

// LoadConfig reads a Config from a JSON file and checks it.
func LoadConfig(path string) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("detect: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("detect: config %s: %w", path, err)
	}
	if err := c.Check(); err != nil {
		return c, fmt.Errorf("detect: config %s: %w", path, err)
	}
	return c, nil
}

// Check reports what is wrong in a configuration, before it meets an
// output.
func (c Config) Check() error {
	switch c.Layout {
	case Grid:
		switch c.Decoding {
		case "", YOLOv5, YOLOv3:
		default:
			return fmt.Errorf("decoding %q: want %q or %q", c.Decoding, YOLOv5, YOLOv3)
		}
		if len(c.Levels) > 0 {
			if err := c.checkLevels(); err != nil {
				return err
			}
			break
		}
		if c.Stride < 0 || c.Stride > 4096 || math.IsNaN(c.Stride) {
			return fmt.Errorf("stride %g out of range", c.Stride)
		}
		if c.Stride == 0 && c.InputWidth <= 0 {
			return fmt.Errorf("a grid needs its stride or the input's width (input_width)")
		}
		if err := checkAnchors(c.Anchors); err != nil {
			return err
		}
	case Rows, Columns:
		if len(c.Anchors) > 0 || c.Sigmoid || len(c.Levels) > 0 {
			return fmt.Errorf("anchors, levels and sigmoid apply to the %q layout only (decoded outputs hold boxes and probabilities)", Grid)
		}
	default:
		return fmt.Errorf("layout %q: want %q, %q or %q", c.Layout, Grid, Rows, Columns)
	}
	if len(c.Classes) == 0 {
		return fmt.Errorf("no classes named")
	}
	return nil
}

func checkAnchors(anchors [][2]float64) error {
	for i, a := range anchors {
		if !(a[0] > 0 && a[1] > 0 && a[0] < 1e6 && a[1] < 1e6) {
			return fmt.Errorf("anchor %d is %v; want positive sizes", i, a)
		}
	}
	return nil
}

// checkLevels checks a multi-level grid's levels.
func (c Config) checkLevels() error {
	if c.Stride != 0 || len(c.Anchors) > 0 || c.InputWidth != 0 {
		return fmt.Errorf("with levels, give the stride and anchors per level, not stride, anchors or input_width")
	}
	if len(c.Levels) > 64 {
		return fmt.Errorf("%d levels; at most 64", len(c.Levels))
	}
	seen := map[string]bool{}
	for i, l := range c.Levels {
		if l.Output == "" {
			return fmt.Errorf("level %d names no output", i)
		}
		if seen[l.Output] {
			return fmt.Errorf("level %d: output %q is already another level's", i, l.Output)
		}
		seen[l.Output] = true
		if !(l.Stride > 0 && l.Stride <= 4096) {
			return fmt.Errorf("level %d (output %q): stride %g; want a positive stride up to 4096", i, l.Output, l.Stride)
		}
		if err := checkAnchors(l.Anchors); err != nil {
			return fmt.Errorf("level %d (output %q): %w", i, l.Output, err)
		}
		if l.Grid[0] < 0 || l.Grid[1] < 0 || l.Grid[0] > 1<<14 || l.Grid[1] > 1<<14 {
			return fmt.Errorf("level %d (output %q): grid %v out of range", i, l.Output, l.Grid)
		}
	}
	return nil
}

// vec is the length of one prediction's vector.
func (c Config) vec() int {
	k := 4 + len(c.Classes)
	if c.Objectness {
		k++
	}
	return k
}

// anchors returns the number of anchors (1 when anchor-free).
func (c Config) anchors() int { return max(len(c.Anchors), 1) }

// layout is the attr layout of a decoded output.
func (c Config) layout() attr.DetectionLayout {
	return attr.DetectionLayout{Columns: c.Layout == Columns, Corners: c.Corners, Objectness: c.Objectness}
}

// Predictions returns the number of predictions in an output of the given
// shape (without the batch), after checking the shape against the
// configuration.
func (c Config) Predictions(shape []int) (int, error) {
	if err := c.Check(); err != nil {
		return 0, fmt.Errorf("detect: config: %w", err)
	}
	k := c.vec()
	switch c.Layout {
	case Grid:
		if len(c.Levels) > 0 {
			return c.levelPredictions(shape)
		}
		if len(shape) != 3 || shape[0] != c.anchors()*k {
			return 0, fmt.Errorf("detect: grid output of shape %v per example; want [%d anchors x %d, H, W] for %d classes", shape, c.anchors(), k, len(c.Classes))
		}
		return c.anchors() * shape[1] * shape[2], nil
	case Rows:
		if len(shape) != 2 || shape[1] != k {
			return 0, fmt.Errorf("detect: output of shape %v per example; want [P, %d] for %d classes", shape, k, len(c.Classes))
		}
		return shape[0], nil
	default:
		if len(shape) != 2 || shape[0] != k {
			return 0, fmt.Errorf("detect: output of shape %v per example; want [%d, P] for %d classes", shape, k, len(c.Classes))
		}
		return shape[1], nil
	}
}

// levelPredictions checks the shape of joined levels and returns their
// number of predictions.
func (c Config) levelPredictions(shape []int) (int, error) {
	p, t := 0, 0
	for i, l := range c.Levels {
		if l.Grid[0] <= 0 || l.Grid[1] <= 0 {
			return 0, fmt.Errorf("detect: level %d (output %q): grid size unknown; declare its grid or join the levels with detect.Join", i, l.Output)
		}
		n := l.anchors() * l.Grid[0] * l.Grid[1]
		p += n
		t += n * c.vec()
	}
	if len(shape) != 1 || shape[0] != t {
		return 0, fmt.Errorf("detect: output of shape %v per example; want the %d levels joined (detect.Open joins them), [%d] (%s) for %d classes", shape, len(c.Levels), t, c.levelSizes(), len(c.Classes))
	}
	return p, nil
}

// levelSizes describes the levels' shapes.
func (c Config) levelSizes() string {
	s := ""
	for i, l := range c.Levels {
		if i > 0 {
			s += " + "
		}
		s += fmt.Sprintf("%s [%d, %d, %d]", l.Output, l.anchors()*c.vec(), l.Grid[0], l.Grid[1])
	}
	return s
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// gridAt locates prediction det of a grid output: the offset of its first
// number, the plane size (the step between its numbers), its cell, anchor
// size and stride.
func (c Config) gridAt(shape []int, det int) (off, plane int, gx, gy, aw, ah, s float64) {
	base, anchors := 0, c.Anchors
	var h, w int
	if len(c.Levels) == 0 {
		h, w, s = shape[1], shape[2], c.Stride
	} else {
		for _, l := range c.Levels {
			h, w, s, anchors = l.Grid[0], l.Grid[1], l.Stride, l.Anchors
			n := l.anchors() * h * w
			if det < n {
				break
			}
			det -= n
			base += n * c.vec()
		}
	}
	plane = h * w
	a, cell := det/plane, det%plane
	off = base + a*c.vec()*plane + cell
	gx, gy = float64(cell%w), float64(cell/w)
	if s == 0 {
		s = float64(c.InputWidth) / float64(w)
	}
	aw, ah = s, s
	if len(anchors) > 0 {
		aw, ah = anchors[a][0], anchors[a][1]
	}
	return
}

// Prediction is one decoded prediction.
type Prediction struct {
	Box        [4]float64 // x1, y1, x2, y2 in input pixels
	Objectness float64    // 1 when the output has none
	Scores     []float64  // per class, the class's probability (without the objectness)
}

// Decode decodes every prediction of one example's output y (shape
// without the batch).
func (c Config) Decode(shape []int, y []float32) ([]Prediction, error) {
	p, err := c.Predictions(shape)
	if err != nil {
		return nil, err
	}
	nc := len(c.Classes)
	out := make([]Prediction, p)
	for d := range out {
		pr := &out[d]
		pr.Scores = make([]float64, nc)
		pr.Objectness = 1
		if c.Layout == Grid {
			off, plane, _, _, _, _, _ := c.gridAt(shape, d)
			pr.Box, _ = c.gridBox(shape, y, d)
			at := func(i int) float64 {
				v := float64(y[off+i*plane])
				if c.Sigmoid {
					v = sigmoid(v)
				}
				return v
			}
			first := 4
			if c.Objectness {
				pr.Objectness = at(4)
				first = 5
			}
			for k := range pr.Scores {
				pr.Scores[k] = at(first + k)
			}
			continue
		}
		l := c.layout()
		sp, sk := c.vec(), 1
		if c.Layout == Columns {
			sp, sk = 1, p
		}
		at := func(i int) float64 { return float64(y[d*sp+i*sk]) }
		pr.Box, _, err = l.Box(shape, y, d, 0)
		if err != nil {
			return nil, err
		}
		first := 4
		if c.Objectness {
			pr.Objectness = at(4)
			first = 5
		}
		for k := range pr.Scores {
			pr.Scores[k] = at(first + k)
		}
	}
	return out, nil
}

// gridBox decodes the box of a grid prediction and returns, for each of
// its four raw numbers (tx, ty, tw, th), d(cx or cy or w or h)/dt.
func (c Config) gridBox(shape []int, y []float32, det int) ([4]float64, [4]float64) {
	off, plane, gx, gy, aw, ah, s := c.gridAt(shape, det)
	t := [4]float64{}
	for i := range t {
		t[i] = float64(y[off+i*plane])
	}
	var cx, cy, w, h float64
	var d [4]float64
	if c.Decoding == YOLOv3 {
		sx, sy := sigmoid(t[0]), sigmoid(t[1])
		cx, cy = (sx+gx)*s, (sy+gy)*s
		w, h = math.Exp(t[2])*aw, math.Exp(t[3])*ah
		d = [4]float64{s * sx * (1 - sx), s * sy * (1 - sy), w, h}
	} else {
		var sg [4]float64
		for i := range sg {
			sg[i] = sigmoid(t[i])
		}
		cx, cy = (2*sg[0]-0.5+gx)*s, (2*sg[1]-0.5+gy)*s
		w, h = 4*sg[2]*sg[2]*aw, 4*sg[3]*sg[3]*ah
		d = [4]float64{2 * s * sg[0] * (1 - sg[0]), 2 * s * sg[1] * (1 - sg[1]),
			8 * sg[2] * aw * sg[2] * (1 - sg[2]), 8 * sg[3] * ah * sg[3] * (1 - sg[3])}
	}
	return [4]float64{cx - w/2, cy - h/2, cx + w/2, cy + h/2}, d
}

// Box implements attr.BoxDecoder: prediction det's box and its score for
// class (the objectness times the class probability).
func (c Config) Box(shape []int, y []float32, det, class int) ([4]float64, float64, error) {
	p, err := c.Predictions(shape)
	if err != nil {
		return [4]float64{}, 0, err
	}
	if det < 0 || det >= p {
		return [4]float64{}, 0, fmt.Errorf("detect: detection %d out of range (%d predictions)", det, p)
	}
	if class < 0 || class >= len(c.Classes) {
		return [4]float64{}, 0, fmt.Errorf("detect: class %d out of range (%d classes)", class, len(c.Classes))
	}
	if c.Layout != Grid {
		return c.layout().Box(shape, y, det, class)
	}
	box, _ := c.gridBox(shape, y, det)
	off, plane, _, _, _, _, _ := c.gridAt(shape, det)
	score, _, _ := c.gridScore(y, off, plane, class)
	return box, score, nil
}

// gridScore returns a grid prediction's class score and its derivatives
// with respect to the raw objectness and class numbers.
func (c Config) gridScore(y []float32, off, plane, class int) (score, dObj, dCls float64) {
	f := func(i int) (v, d float64) {
		v = float64(y[off+i*plane])
		if c.Sigmoid {
			s := sigmoid(v)
			return s, s * (1 - s)
		}
		return v, 1
	}
	if !c.Objectness {
		v, d := f(4 + class)
		return v, 0, d
	}
	o, do := f(4)
	p, dp := f(5 + class)
	return o * p, do * p, o * dp
}

// BoxGrad implements attr.BoxDecoder.
func (c Config) BoxGrad(shape []int, y []float32, det, class int, dBox [4]float64, dScore float64, grad []float32) error {
	if _, _, err := c.Box(shape, y, det, class); err != nil {
		return err
	}
	if c.Layout != Grid {
		return c.layout().BoxGrad(shape, y, det, class, dBox, dScore, grad)
	}
	off, plane, _, _, _, _, _ := c.gridAt(shape, det)
	_, d := c.gridBox(shape, y, det)
	// x1 = cx - w/2, x2 = cx + w/2 (and y).
	dc := [4]float64{dBox[0] + dBox[2], dBox[1] + dBox[3], (dBox[2] - dBox[0]) / 2, (dBox[3] - dBox[1]) / 2}
	for i := range dc {
		grad[off+i*plane] += float32(dc[i] * d[i])
	}
	_, dObj, dCls := c.gridScore(y, off, plane, class)
	if c.Objectness {
		grad[off+4*plane] += float32(dScore * dObj)
		grad[off+(5+class)*plane] += float32(dScore * dCls)
	} else {
		grad[off+(4+class)*plane] += float32(dScore * dCls)
	}
	return nil
}

var _ attr.BoxDecoder = Config{}
