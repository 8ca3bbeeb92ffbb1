package attr

import (
	"fmt"
	"math"

	"github.com/loupe-ml/loupe/tensor"
)

// This file holds the targets that are functions of an example's output
// rather than one of its elements: a detector's box score, a segmentation
// mask's sum of logits and the similarity to a reference embedding. They
// are declared (what to explain), not wrapped around the model, and work
// with every method: gradient methods differentiate them (the seed of the
// backward pass is their gradient at the output), perturbation methods
// evaluate them on each perturbed output.

// rowFn is a scalar function of one example's output.
type rowFn interface {
	// examples is how many examples the function has parameters for; 0
	// when all examples share them.
	examples() int
	// eval returns the value at y, one example's output (of the given
	// shape, the output's without the batch), for example e's parameters
	// and, when grad is not nil, adds the gradient with respect to y to it.
	eval(e int, shape []int, y, grad []float32) (float64, error)
	String() string
}

// exOf returns the example that row r of a function target belongs to.
func (t Target) exOf(r int) int {
	if t.ex != nil {
		return t.ex[r]
	}
	return r
}

// fnRows evaluates a function target on every row of out and, when grad
// (out's shape) is not nil, adds each row's gradient to it.
func (t Target) fnRows(out, grad *tensor.Tensor) ([]float32, error) {
	if out.Rank() == 0 {
		return nil, fmt.Errorf("target %v: the model output is a scalar; it must have a batch dimension", t.fn)
	}
	rows := out.Shape[0]
	ne := t.fn.examples()
	if t.ex == nil && ne > 0 && ne != rows {
		return nil, fmt.Errorf("target %v: %d examples' parameters for %d examples", t.fn, ne, rows)
	}
	if t.ex != nil && len(t.ex) != rows {
		return nil, fmt.Errorf("target %v: %d rows expected, the model returned %d", t.fn, len(t.ex), rows)
	}
	shape := out.Shape[1:]
	size := tensor.Size(shape)
	vals := make([]float32, rows)
	for r := 0; r < rows; r++ {
		e := t.exOf(r)
		if ne > 0 && e >= ne {
			return nil, fmt.Errorf("target %v: row %d is example %d; parameters were given for %d", t.fn, r, e, ne)
		}
		var g []float32
		if grad != nil {
			g = grad.F[r*size : (r+1)*size]
		}
		v, err := t.fn.eval(e, shape, out.F[r*size:(r+1)*size], g)
		if err != nil {
			return nil, err
		}
		vals[r] = float32(v)
	}
	return vals, nil
}

// A BoxDecoder reads boxes and class scores out of one example's detector
// output. DetectionLayout reads decoded outputs (YOLOv5 and YOLOv8
// exports); the detect package's Config reads raw grid outputs too.
type BoxDecoder interface {
	// Box returns prediction det's box (x1, y1, x2, y2, in input pixels)
	// and its score for class, read from y, one example's output of the
	// given shape (the output's shape without the batch).
	Box(shape []int, y []float32, det, class int) (box [4]float64, score float64, err error)
	// BoxGrad adds to grad (y's shape) the gradient with respect to y of
	// dBox·box + dScore·score, box and score as Box returns them.
	BoxGrad(shape []int, y []float32, det, class int, dBox [4]float64, dScore float64, grad []float32) error
}

// Box is one detection to explain: a prediction of the detector's output
// and a class.
type Box struct {
	// Detection is the prediction's index in the output (its row of a
	// YOLOv5 export, its column of a YOLOv8 export, its cell and anchor of
	// a raw grid: see the decoder).
	Detection int
	// Class is the class whose score is explained.
	Class int
	// IoU, when set, multiplies the score by the intersection over union of
	// the prediction's box with Ref, so that the explanation also accounts
	// for where the box is (pytorch-grad-cam's FasterRCNNBoxScoreTarget
	// adds the two instead; the product is 0 when the box moves away).
	IoU bool
	// Ref is the reference box (x1, y1, x2, y2), usually the detection's
	// box on the unperturbed input.
	Ref [4]float64
}

// BoxScore targets the class score of one detection of a detector (times
// its IoU with a reference box when Box.IoU is set), read from the output
// by dec: one box for every example, or one per example. It is the target
// of FoxAI's LayerGradCAMObjectDetection, usable by every method.
func BoxScore(dec BoxDecoder, boxes ...Box) Target {
	return Target{fn: &boxFn{dec: dec, boxes: append([]Box(nil), boxes...)}}
}

type boxFn struct {
	dec   BoxDecoder
	boxes []Box
}

func (b *boxFn) examples() int {
	if len(b.boxes) == 1 {
		return 0
	}
	return len(b.boxes)
}

func (b *boxFn) String() string {
	if len(b.boxes) == 1 {
		return fmt.Sprintf("box%+v", b.boxes[0])
	}
	return fmt.Sprintf("boxes%+v", b.boxes)
}

func (b *boxFn) eval(e int, shape []int, y, grad []float32) (float64, error) {
	if b.dec == nil {
		return 0, fmt.Errorf("target %v: no box decoder", b)
	}
	if len(b.boxes) == 0 {
		return 0, fmt.Errorf("target: BoxScore was given no box")
	}
	bx := b.boxes[0]
	if len(b.boxes) > 1 {
		bx = b.boxes[e]
	}
	box, score, err := b.dec.Box(shape, y, bx.Detection, bx.Class)
	if err != nil {
		return 0, fmt.Errorf("target %v: %w", b, err)
	}
	if !bx.IoU {
		if grad != nil {
			err = b.dec.BoxGrad(shape, y, bx.Detection, bx.Class, [4]float64{}, 1, grad)
		}
		return score, err
	}
	iou, dIoU := IoU(box, bx.Ref)
	if grad != nil {
		var dBox [4]float64
		for i := range dBox {
			dBox[i] = score * dIoU[i]
		}
		err = b.dec.BoxGrad(shape, y, bx.Detection, bx.Class, dBox, iou, grad)
	}
	return score * iou, err
}

// IoU returns the intersection over union of boxes a and b (x1, y1, x2,
// y2) and its gradient with respect to a's coordinates. Boxes with no
// area give 0.
func IoU(a, b [4]float64) (float64, [4]float64) {
	var d [4]float64
	aw, ah := a[2]-a[0], a[3]-a[1]
	bw, bh := b[2]-b[0], b[3]-b[1]
	if aw <= 0 || ah <= 0 || bw <= 0 || bh <= 0 {
		return 0, d
	}
	x1, y1 := math.Max(a[0], b[0]), math.Max(a[1], b[1])
	x2, y2 := math.Min(a[2], b[2]), math.Min(a[3], b[3])
	iw, ih := x2-x1, y2-y1
	if iw <= 0 || ih <= 0 {
		return 0, d
	}
	inter := iw * ih
	sum := aw*ah + bw*bh
	u := sum - inter
	// IoU = I / (Aa + Ab - I): dIoU/dI = (Aa+Ab)/U², dIoU/dAa = -I/U².
	dI, dA := sum/(u*u), -inter/(u*u)
	var dInter [4]float64
	if a[0] > b[0] {
		dInter[0] = -ih
	}
	if a[1] > b[1] {
		dInter[1] = -iw
	}
	if a[2] < b[2] {
		dInter[2] = ih
	}
	if a[3] < b[3] {
		dInter[3] = iw
	}
	dArea := [4]float64{-ah, -aw, ah, aw}
	for i := range d {
		d[i] = dI*dInter[i] + dA*dArea[i]
	}
	return inter / u, d
}

// DetectionLayout describes a detector output that holds decoded boxes,
// one vector per prediction: the box (4 numbers), an objectness when
// Objectness is set, then one score per class. YOLOv5 exports are
// {Objectness: true} ([N, P, 5+C], centre and size in pixels), YOLOv8
// exports {Columns: true} ([N, 4+C, P]). Scores are read as they are
// (exports apply the sigmoid themselves).
type DetectionLayout struct {
	// Columns: the predictions are the last axis ([K, P]); otherwise each
	// prediction is a row ([P, K]).
	Columns bool
	// Corners: boxes are x1, y1, x2, y2; otherwise centre x, centre y,
	// width, height.
	Corners bool
	// Objectness: a score follows the box; a class's score is the
	// objectness times the class's.
	Objectness bool
}

// dims checks an output shape against the layout and returns the number
// of predictions, the vector length and the strides of the prediction and
// vector axes.
func (l DetectionLayout) dims(shape []int, det, class int) (p, k, sp, sk int, err error) {
	if len(shape) != 2 {
		return 0, 0, 0, 0, fmt.Errorf("detection layout: output shape %v per example, want 2 dimensions (predictions and box/scores)", shape)
	}
	p, k, sp, sk = shape[0], shape[1], shape[1], 1
	if l.Columns {
		p, k, sp, sk = shape[1], shape[0], 1, shape[1]
	}
	nc := k - 4
	if l.Objectness {
		nc--
	}
	if nc < 1 {
		return 0, 0, 0, 0, fmt.Errorf("detection layout: predictions of %d numbers leave no class score", k)
	}
	if det < 0 || det >= p {
		return 0, 0, 0, 0, fmt.Errorf("detection layout: detection %d out of range (%d predictions)", det, p)
	}
	if class < 0 || class >= nc {
		return 0, 0, 0, 0, fmt.Errorf("detection layout: class %d out of range (%d classes)", class, nc)
	}
	return p, k, sp, sk, nil
}

// Classes returns the number of classes of an output shape.
func (l DetectionLayout) Classes(shape []int) (int, error) {
	_, k, _, _, err := l.dims(shape, 0, 0)
	if err != nil {
		return 0, err
	}
	if l.Objectness {
		return k - 5, nil
	}
	return k - 4, nil
}

// Box implements BoxDecoder.
func (l DetectionLayout) Box(shape []int, y []float32, det, class int) ([4]float64, float64, error) {
	_, _, sp, sk, err := l.dims(shape, det, class)
	if err != nil {
		return [4]float64{}, 0, err
	}
	at := func(i int) float64 { return float64(y[det*sp+i*sk]) }
	b := [4]float64{at(0), at(1), at(2), at(3)}
	if !l.Corners {
		b = [4]float64{b[0] - b[2]/2, b[1] - b[3]/2, b[0] + b[2]/2, b[1] + b[3]/2}
	}
	if l.Objectness {
		return b, at(4) * at(5+class), nil
	}
	return b, at(4 + class), nil
}

// BoxGrad implements BoxDecoder.
func (l DetectionLayout) BoxGrad(shape []int, y []float32, det, class int, dBox [4]float64, dScore float64, grad []float32) error {
	_, _, sp, sk, err := l.dims(shape, det, class)
	if err != nil {
		return err
	}
	add := func(i int, v float64) { grad[det*sp+i*sk] += float32(v) }
	if l.Corners {
		for i, v := range dBox {
			add(i, v)
		}
	} else {
		// x1 = cx - w/2, x2 = cx + w/2 (and y).
		add(0, dBox[0]+dBox[2])
		add(1, dBox[1]+dBox[3])
		add(2, (dBox[2]-dBox[0])/2)
		add(3, (dBox[3]-dBox[1])/2)
	}
	at := func(i int) float64 { return float64(y[det*sp+i*sk]) }
	if l.Objectness {
		add(4, dScore*at(5+class))
		add(5+class, dScore*at(4))
	} else {
		add(4+class, dScore)
	}
	return nil
}

// Mask targets the sum of one class's logits over a region of a
// segmentation output [N, C, H, W], weighted by mask ([H, W] for every
// example, or [N, H, W]: one per example; 0/1 for a region), as
// pytorch-grad-cam's SemanticSegmentationTarget.
func Mask(class int, mask *tensor.Tensor) Target {
	return Target{fn: &maskFn{class: class, mask: mask.AsFloat32()}}
}

type maskFn struct {
	class int
	mask  *tensor.Tensor
}

func (m *maskFn) examples() int {
	if m.mask.Rank() == 3 {
		return m.mask.Shape[0]
	}
	return 0
}

func (m *maskFn) String() string { return fmt.Sprintf("mask(class %d, %v)", m.class, m.mask.Shape) }

func (m *maskFn) eval(e int, shape []int, y, grad []float32) (float64, error) {
	if len(shape) != 3 {
		return 0, fmt.Errorf("target %v: output shape %v per example, want [C, H, W]", m, shape)
	}
	plane := m.mask.Shape[m.mask.Rank()-2:]
	if m.mask.Rank() < 2 || m.mask.Rank() > 3 || !tensor.SameShape(plane, shape[1:]) {
		return 0, fmt.Errorf("target %v: mask of shape %v for an output of [C, H, W] = %v (want [H, W] or [N, H, W])", m, m.mask.Shape, shape)
	}
	if m.class < 0 || m.class >= shape[0] {
		return 0, fmt.Errorf("target %v: class %d out of range (%d classes)", m, m.class, shape[0])
	}
	hw := shape[1] * shape[2]
	w := m.mask.F
	if m.mask.Rank() == 3 {
		w = w[e*hw : (e+1)*hw]
	}
	ys := y[m.class*hw : (m.class+1)*hw]
	var s float64
	for i, v := range w {
		s += float64(v) * float64(ys[i])
	}
	if grad != nil {
		g := grad[m.class*hw : (m.class+1)*hw]
		for i, v := range w {
			g[i] += v
		}
	}
	return s, nil
}

// Similarity targets the cosine similarity of each example's output (an
// embedding, of any shape) with ref, which has the output's shape without
// the batch, as pytorch-grad-cam's SimilarityToConceptTarget. With dot
// set it is the dot product instead.
func Similarity(ref *tensor.Tensor, dot bool) Target {
	return Target{fn: &simFn{ref: ref.AsFloat32(), dot: dot}}
}

// Similarities is Similarity with one reference per example: refs is
// [N, ...], row e the reference of example e.
func Similarities(refs *tensor.Tensor, dot bool) Target {
	return Target{fn: &simFn{ref: refs.AsFloat32(), dot: dot, per: true}}
}

type simFn struct {
	ref *tensor.Tensor
	dot bool
	per bool // ref holds one row per example
}

func (s *simFn) examples() int {
	if s.per && s.ref.Rank() > 0 {
		return s.ref.Shape[0]
	}
	return 0
}

func (s *simFn) String() string {
	if s.dot {
		return fmt.Sprintf("dot(%v)", s.ref.Shape)
	}
	return fmt.Sprintf("cosine(%v)", s.ref.Shape)
}

func (s *simFn) eval(e int, shape []int, y, grad []float32) (float64, error) {
	r := s.ref.F
	switch {
	case !s.per && tensor.SameShape(s.ref.Shape, shape):
	case s.per && s.ref.Rank() == len(shape)+1 && tensor.SameShape(s.ref.Shape[1:], shape):
		r = r[e*len(y) : (e+1)*len(y)]
	default:
		return 0, fmt.Errorf("target %v: reference of shape %v for an output of shape %v per example", s, s.ref.Shape, shape)
	}
	var dot, yy, rr float64
	for i, v := range y {
		dot += float64(v) * float64(r[i])
		yy += float64(v) * float64(v)
		rr += float64(r[i]) * float64(r[i])
	}
	if s.dot {
		if grad != nil {
			for i := range grad {
				grad[i] += r[i]
			}
		}
		return dot, nil
	}
	if yy == 0 || rr == 0 {
		return 0, nil
	}
	ny, nr := math.Sqrt(yy), math.Sqrt(rr)
	cos := dot / (ny * nr)
	if grad != nil {
		// d cos / dy = r/(|y||r|) - cos * y/|y|².
		for i := range grad {
			grad[i] += float32(float64(r[i])/(ny*nr) - cos*float64(y[i])/yy)
		}
	}
	return cos, nil
}
