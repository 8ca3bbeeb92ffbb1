package detect

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/tensor"
)

var demoConfig = Config{Layout: Grid, Classes: []string{"square", "disc", "triangle"}, Objectness: true,
	Stride: 8, Anchors: [][2]float64{{14, 14}}, Decoding: YOLOv5, Sigmoid: true}

// The grid decoding matches detect_train.py's PyTorch decode() on a fixed
// raw output (sin(0.37 i)·3 over [8, 8, 8]; numbers printed by PyTorch in
// float64).
func TestDecodeMatchesPyTorch(t *testing.T) {
	y := make([]float32, 8*8*8)
	for i := range y {
		y[i] = float32(math.Sin(0.37*float64(i)) * 3)
	}
	want := map[int][7]float64{
		0:  {0.924493565, -28.146972513, 7.075506435, 21.695074366, 0.060849317, 0.099059823, 0.704253484},
		9:  {-6.999243276, 18.991766373, 26.618816165, 19.275260365, 0.122477427, 0.124961638, 0.023325197},
		27: {0.18758157, 34.031419459, 45.15744159, 35.122181453, 0.05409497, 0.066446343, 0.025940743},
		63: {27.424061669, 52.29302693, 78.236506804, 70.868594625, 0.01370758, 0.04758931, 0.042486608},
	}
	preds, err := demoConfig.Decode([]int{8, 8, 8}, y)
	if err != nil {
		t.Fatal(err)
	}
	if len(preds) != 64 {
		t.Fatalf("%d predictions, want 64", len(preds))
	}
	for p, w := range want {
		got := preds[p]
		for i := 0; i < 4; i++ {
			if math.Abs(got.Box[i]-w[i]) > 1e-4 {
				t.Errorf("prediction %d: box %v, want %v", p, got.Box, w[:4])
				break
			}
		}
		for k := 0; k < 3; k++ {
			if s := got.Objectness * got.Scores[k]; math.Abs(s-w[4+k]) > 1e-6 {
				t.Errorf("prediction %d class %d: score %g, want %g", p, k, s, w[4+k])
			}
			_, s, err := demoConfig.Box([]int{8, 8, 8}, y, p, k)
			if err != nil || math.Abs(s-w[4+k]) > 1e-6 {
				t.Errorf("Box(%d, %d): score %g (%v), want %g", p, k, s, err, w[4+k])
			}
		}
	}
}

// The box target's gradient through every decoding matches finite
// differences of its value.
func TestGridBoxGradient(t *testing.T) {
	configs := map[string]Config{
		"yolov5": demoConfig,
		"yolov5/2 anchors": {Layout: Grid, Classes: []string{"a", "b"}, Objectness: true, Stride: 4,
			Anchors: [][2]float64{{6, 10}, {12, 8}}, Sigmoid: true},
		"yolov3/anchor-free":           {Layout: Grid, Classes: []string{"a", "b"}, Objectness: true, InputWidth: 20, Decoding: YOLOv3, Sigmoid: true},
		"no objectness, probabilities": {Layout: Grid, Classes: []string{"a", "b", "c"}, Stride: 4},
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for name, c := range configs {
		k := c.anchors() * c.vec()
		out := tensor.New(2, k, 5, 5)
		for i := range out.F {
			out.F[i] = float32(rng.NormFloat64())
			if !c.Sigmoid {
				out.F[i] = float32(0.1 + 0.8*rng.Float64())
			}
		}
		p, err := c.Predictions(out.Shape[1:])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, iou := range []bool{false, true} {
			boxes := []attr.Box{{Detection: 7, Class: 1, IoU: iou, Ref: [4]float64{2, 3, 10, 12}},
				{Detection: p - 1, Class: 0, IoU: iou, Ref: [4]float64{5, 5, 20, 20}}}
			tg := attr.BoxScore(c, boxes...)
			seed := tensor.New(out.Shape...)
			grads(t, c, boxes, out, seed)
			const h = 1e-3
			worst := 0.0
			for i := range out.F {
				v := out.F[i]
				out.F[i] = v + h
				up := values(t, tg, out)
				out.F[i] = v - h
				dn := values(t, tg, out)
				out.F[i] = v
				fd := (up - dn) / (2 * h)
				worst = math.Max(worst, math.Abs(fd-float64(seed.F[i])))
			}
			if worst > 5e-3 {
				t.Errorf("%s (IoU %v): gradient off finite differences by %g", name, iou, worst)
			}
		}
	}
}

// values returns the sum over rows of a target on out, through a
// perturbation method's path (attr.Select).
func values(t *testing.T, tg attr.Target, out *tensor.Tensor) float64 {
	t.Helper()
	v, err := attr.Select(out, tg, out.Shape[0])
	if err != nil {
		t.Fatal(err)
	}
	s := 0.0
	for _, x := range v {
		s += float64(x)
	}
	return s
}

// grads writes into seed the gradient of the box target at out as attr's
// BoxScore forms it: BoxGrad with dScore = IoU and dBox = score · dIoU.
func grads(t *testing.T, c Config, boxes []attr.Box, out, seed *tensor.Tensor) {
	t.Helper()
	shape := out.Shape[1:]
	row := tensor.Size(shape)
	for r := 0; r < out.Shape[0]; r++ {
		y := out.F[r*row : (r+1)*row]
		b := boxes[r]
		box, score, err := c.Box(shape, y, b.Detection, b.Class)
		if err != nil {
			t.Fatal(err)
		}
		var dBox [4]float64
		dScore := 1.0
		if b.IoU {
			v, d := attr.IoU(box, b.Ref)
			dScore = v
			for i := range dBox {
				dBox[i] = score * d[i]
			}
		}
		if err := c.BoxGrad(shape, y, b.Detection, b.Class, dBox, dScore, seed.F[r*row:(r+1)*row]); err != nil {
			t.Fatal(err)
		}
	}
}

func TestConfigChecks(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, []byte(`{"layout": "grid", "classes": ["a"], "objectness": true, "stride": 8, "anchors": [[10, 13], [16, 30]], "sigmoid": true}`), 0o644)
	c, err := LoadConfig(good)
	if err != nil || len(c.Anchors) != 2 || c.Stride != 8 || !c.Sigmoid {
		t.Fatalf("LoadConfig: %+v, %v", c, err)
	}
	if p, err := c.Predictions([]int{12, 4, 5}); err != nil || p != 40 {
		t.Errorf("2 anchors of 6 numbers over 4x5 cells: %d predictions (%v), want 40", p, err)
	}
	if _, err := c.Predictions([]int{10, 4, 5}); err == nil || !strings.Contains(err.Error(), "[2 anchors x 6, H, W]") {
		t.Errorf("wrong channel count: %v", err)
	}
	bad := map[string]string{
		`{"layout": "boxes", "classes": ["a"]}`:                                  "layout",
		`{"layout": "grid", "classes": ["a"]}`:                                   "stride",
		`{"layout": "grid", "classes": ["a"], "stride": 8, "anchors": [[0, 1]]}`: "anchor 0",
		`{"layout": "rows", "classes": []}`:                                      "no classes",
		`{"layout": "rows", "classes": ["a"], "sigmoid": true}`:                  "sigmoid",
		`{"layout": "grid", "classes": ["a"], "stride": 8, "decoding": "v9"}`:    "decoding",
		`{"layout": 3}`: "config",
	}
	for text, want := range bad {
		p := filepath.Join(dir, "bad.json")
		os.WriteFile(p, []byte(text), 0o644)
		if _, err := LoadConfig(p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one about %q", text, err, want)
		}
	}
	if _, err := LoadConfig(filepath.Join(dir, "none.json")); err == nil {
		t.Error("missing file: no error")
	}
	rows := Config{Layout: Rows, Classes: []string{"a", "b"}, Objectness: true}
	y := []float32{10, 20, 4, 6, 0.5, 0.2, 0.8, 0, 0, 2, 2, 0.1, 0.9, 0.1}
	preds, err := rows.Decode([]int{2, 7}, y)
	if err != nil || len(preds) != 2 || preds[0].Box != [4]float64{8, 17, 12, 23} || preds[0].Objectness != 0.5 || preds[1].Scores[0] != float64(float32(0.9)) {
		t.Errorf("rows decode: %+v (%v)", preds, err)
	}
	cols := Config{Layout: Columns, Classes: []string{"a", "b"}, Corners: true}
	yc := []float32{1, 2, 3, 4, 5, 6, 7, 8, 0.1, 0.2, 0.3, 0.4} // [6, 2]
	preds, err = cols.Decode([]int{6, 2}, yc)
	if err != nil || preds[1].Box != [4]float64{2, 4, 6, 8} || preds[1].Scores[1] != float64(float32(0.4)) || preds[1].Objectness != 1 {
		t.Errorf("columns decode: %+v (%v)", preds, err)
	}
	if _, _, err := rows.Box([]int{2, 7}, y, 2, 0); err == nil {
		t.Error("detection 2 of 2: no error")
	}
	if _, _, err := rows.Box([]int{2, 7}, y, 0, 2); err == nil {
		t.Error("class 2 of 2: no error")
	}
}

func TestNMS(t *testing.T) {
	dets := []Detection{
		{Index: 0, Class: 0, Score: 0.6, Box: [4]float64{0, 0, 10, 10}},
		{Index: 1, Class: 0, Score: 0.9, Box: [4]float64{1, 0, 11, 10}}, // IoU 9/11 with 0: suppresses it
		{Index: 2, Class: 1, Score: 0.5, Box: [4]float64{0, 0, 10, 10}}, // other class: kept
		{Index: 3, Class: 0, Score: 0.7, Box: [4]float64{20, 20, 30, 30}},
	}
	got := NMS(dets, 0.45, 10)
	var idx []int
	for _, d := range got {
		idx = append(idx, d.Index)
	}
	if len(idx) != 3 || idx[0] != 1 || idx[1] != 3 || idx[2] != 2 {
		t.Errorf("NMS kept %v, want [1 3 2]", idx)
	}
	if got := NMS(dets, 0.45, 1); len(got) != 1 || got[0].Index != 1 {
		t.Errorf("NMS with max 1: %v", got)
	}
	if got := NMS(dets, 0.95, 10); len(got) != 4 {
		t.Errorf("NMS at IoU 0.95 kept %d of 4", len(got))
	}
}
