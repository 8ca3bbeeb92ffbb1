package detect_test

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/detect"
	"github.com/loupe-ml/loupe/internal/demo"
	"github.com/loupe-ml/loupe/tensor"
)

func scene(t testing.TB, seed uint64) (*detect.Detector, *tensor.Tensor, []demo.Object, []detect.Detection) {
	t.Helper()
	d, err := demo.Detector()
	if err != nil {
		t.Fatal(err)
	}
	img, objs := demo.Scene(seed)
	x, _ := img.Reshape(1, 3, demo.SceneSize, demo.SceneSize)
	all, err := d.Detect(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	return d, x, objs, all[0]
}

// The demo detector finds a scene's shapes: each object has a detection of
// its class with IoU at least 0.5.
func TestDetectDemoScene(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		_, _, objs, dets := scene(t, seed)
		if len(dets) != len(objs) {
			t.Errorf("scene %d: %d detections for %d objects", seed, len(dets), len(objs))
		}
		for _, o := range objs {
			best := 0.0
			for _, d := range dets {
				if v, _ := attr.IoU(d.Box, o.Box); d.Class == o.Class && v > best {
					best = v
				}
			}
			if best < 0.5 {
				t.Errorf("scene %d: object %v of class %d found with IoU %.2f", seed, o.Box, o.Class, best)
			}
		}
	}
}

// Explaining all boxes in one batch gives, row by row, what explaining
// each box alone gives; GradCAM's maps are in [0, 1].
func TestExplainBatchesBoxes(t *testing.T) {
	ctx := context.Background()
	d, x, _, dets := scene(t, 2)
	if len(dets) < 2 {
		t.Fatalf("scene 2 has %d detections; the test wants at least 2", len(dets))
	}
	for _, iou := range []bool{false, true} {
		all, err := d.GradCAM(ctx, x, dets, demo.DetectionLayer, iou)
		if err != nil {
			t.Fatal(err)
		}
		hw := x.Shape[2] * x.Shape[3]
		if all.Shape[0] != len(dets) || all.Len() != len(dets)*hw {
			t.Fatalf("maps of shape %v for %d detections", all.Shape, len(dets))
		}
		for i, dt := range dets {
			one, err := d.GradCAM(ctx, x, []detect.Detection{dt}, demo.DetectionLayer, iou)
			if err != nil {
				t.Fatal(err)
			}
			if diff := tensor.MaxAbsDiff(one.F, all.F[i*hw:(i+1)*hw]); diff > 1e-5 {
				t.Errorf("IoU %v box %d: alone and in a batch differ by %g", iou, i, diff)
			}
		}
		for _, v := range all.F {
			if v < 0 || v > 1 || math.IsNaN(float64(v)) {
				t.Fatalf("GradCAM value %g outside [0, 1]", v)
			}
		}
	}
	// A perturbation method takes the box target too: FeatureAblation of
	// the whole image (one feature) gives score(x) - score(0) per box.
	mask := tensor.NewInt(1, 1, x.Shape[2], x.Shape[3])
	r, err := d.Explain(ctx, &attr.FeatureAblation{Model: d.Net, FeatureMask: []*tensor.Tensor{mask}}, x, dets, false)
	if err != nil {
		t.Fatal(err)
	}
	zero := tensor.New(x.Shape...)
	y0, _ := d.Net.Eval(ctx, []*tensor.Tensor{zero})
	for i, dt := range dets {
		_, s0, _ := d.Config.Box(y0.Shape[1:], y0.F, dt.Index, dt.Class)
		got := r.Attributions[0].F[i*x.Len()]
		if want := dt.Score - s0; math.Abs(float64(got)-want) > 1e-4 {
			t.Errorf("box %d: ablating the image changes the score by %g, want %g", i, got, want)
		}
	}
}

// D-RISE does not depend on the batch size, and its maps peak inside the
// explained box.
func TestDRISE(t *testing.T) {
	ctx := context.Background()
	d, x, _, dets := scene(t, 3)
	a, err := (&detect.DRISE{Detector: d, Masks: 200, Cells: 8, BatchSize: 64, Seed: 5}).Attribute(ctx, x, dets)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	b, err := (&detect.DRISE{Detector: d, Masks: 200, Cells: 8, BatchSize: 7, Seed: 5, Progress: func(done, total int) { calls++ }}).Attribute(ctx, x, dets)
	if err != nil {
		t.Fatal(err)
	}
	if diff := tensor.MaxAbsDiff(a.F, b.F); diff > 1e-6 {
		t.Errorf("batch sizes 64 and 7 differ by %g", diff)
	}
	if calls != 29 {
		t.Errorf("progress called %d times for 29 batches", calls)
	}
	s := demo.SceneSize
	for i, dt := range dets {
		best := 0
		for p := 0; p < s*s; p++ {
			if a.F[i*s*s+p] > a.F[i*s*s+best] {
				best = p
			}
		}
		px, py := float64(best%s), float64(best/s)
		if px < dt.Box[0] || px >= dt.Box[2] || py < dt.Box[1] || py >= dt.Box[3] {
			t.Errorf("box %d %v: D-RISE peaks at (%g, %g)", i, dt.Box, px, py)
		}
	}
	for _, bad := range []*detect.DRISE{{Detector: d, Keep: 2}, {Detector: d, Cells: 1000}, {Detector: d, Masks: -1}, {}} {
		if _, err := bad.Attribute(ctx, x, dets); err == nil {
			t.Errorf("%+v: no error", *bad)
		}
	}
	if _, err := (&detect.DRISE{Detector: d}).Attribute(ctx, x, nil); err == nil {
		t.Error("no detections: no error")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := (&detect.DRISE{Detector: d}).Attribute(cancelled, x, dets); err == nil {
		t.Error("cancelled context: no error")
	}
}

func TestDetectErrors(t *testing.T) {
	ctx := context.Background()
	d, x, _, dets := scene(t, 1)
	two := tensor.New(2, 3, demo.SceneSize, demo.SceneSize)
	if _, err := d.GradCAM(ctx, two, dets, "", false); err == nil {
		t.Error("two images: no error")
	}
	if _, err := d.Explain(ctx, &attr.Saliency{Net: d.Net}, x, nil, false); err == nil {
		t.Error("no detections: no error")
	}
	bad := *d
	bad.Config.Classes = []string{"a"}
	if _, err := bad.Detect(ctx, x); err == nil {
		t.Error("a config with 1 class for a 3-class output: no error")
	}
	if _, err := (&detect.Detector{}).Detect(ctx, x); err == nil {
		t.Error("no net: no error")
	}
}

// Detect a demo scene and explain each detection with GradCAM.
func ExampleDetector_GradCAM() {
	d, err := demo.Detector()
	if err != nil {
		panic(err)
	}
	img, _ := demo.Scene(2)
	x, _ := img.Reshape(1, 3, demo.SceneSize, demo.SceneSize)
	dets, err := d.Detect(context.Background(), x)
	if err != nil {
		panic(err)
	}
	maps, err := d.GradCAM(context.Background(), x, dets[0], demo.DetectionLayer, false)
	if err != nil {
		panic(err)
	}
	for _, dt := range dets[0] {
		fmt.Printf("%s %.1f at %.0f: map %v\n", dt.Label, dt.Score, dt.Box, maps.Shape[1:])
	}
	// Output:
	// triangle 1.0 at [36 38 51 53]: map [64 64]
	// disc 1.0 at [20 19 35 34]: map [64 64]
	// disc 0.7 at [39 10 58 29]: map [64 64]
}

// Explain each detection of a demo scene with D-RISE, as a black box.
func ExampleDRISE() {
	d, err := demo.Detector()
	if err != nil {
		panic(err)
	}
	img, _ := demo.Scene(3)
	x, _ := img.Reshape(1, 3, demo.SceneSize, demo.SceneSize)
	dets, err := d.Detect(context.Background(), x)
	if err != nil {
		panic(err)
	}
	maps, err := (&detect.DRISE{Detector: d, Masks: 300, Cells: 8}).Attribute(context.Background(), x, dets[0])
	if err != nil {
		panic(err)
	}
	s := demo.SceneSize
	for i, dt := range dets[0] {
		best := 0
		for p := 1; p < s*s; p++ {
			if maps.F[i*s*s+p] > maps.F[i*s*s+best] {
				best = p
			}
		}
		px, py := float64(best%s), float64(best/s)
		fmt.Printf("%s: peak inside its box: %v\n", dt.Label, px >= dt.Box[0] && px < dt.Box[2] && py >= dt.Box[1] && py < dt.Box[3])
	}
	// Output:
	// triangle: peak inside its box: true
	// square: peak inside its box: true
}
