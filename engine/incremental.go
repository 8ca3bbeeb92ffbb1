package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/internal/par"
	"github.com/loupe-ml/loupe/tensor"
)

// Incremental is a forward pass of one batch kept whole, to evaluate many
// copies of that batch which each differ from it in a small box of one
// input (an occluded window, an ablated group of features) for the cost of
// the part of the network the change reaches: exact incremental inference
// (Nakandala, Kumar and Papakonstantinou, "Incremental and Approximate
// Inference for Faster Occlusion-based Deep CNN Explanations", SIGMOD 2019).
//
// For each op in order, a copy's changed box of the op's output is the
// op's propagation of its inputs' changed boxes (a convolution or pooling
// grows it by its receptive field, an elementwise op takes the union); the
// op runs on the crops of its inputs over what that box reads (the cached
// values with the copy's changes laid over them), all copies in one call,
// and every value outside the box is the cached one. An op without such a
// rule (op.Local), or a box that covers most of a tensor, switches to the
// full computation from there on (exact, just not faster): in a CNN that
// happens at the global pooling at the latest. Results equal a full
// forward pass of the copies up to float32 rounding (the kernels may sum
// in another order on smaller tensors).
//
// An Incremental is safe for concurrent use.
type Incremental struct {
	m     *Model
	rows  int
	out   int
	vals  []*tensor.Tensor // value of every slot in the base pass
	kind0 []uint8          // per slot: kConst, kRows or kOther in the base pass
	steps []*incStep
	last  []int // per slot, the index of the last step reading it (-1: none)
	// full is the fraction of a tensor's elements (per row) from which a
	// changed box is computed as the whole tensor.
	full float64

	mu    sync.Mutex
	stats map[int]*Region // per step index
}

type incStep struct {
	cn    cnode
	rule  op.LocalRule
	local bool
	once  sync.Once
	pad   *tensor.Tensor // input 0 padded as rule.Axes ask (lazily)
}

// Slot kinds in the base pass: the same value in every copy (constants,
// shared inputs), the base value repeated for each copy (rows of the batch,
// and what local ops compute from them), or a value that must be computed
// for the copies as a whole batch (what other ops compute from rows).
const (
	kConst uint8 = iota
	kRows
	kOther
)

// Patch is one copy of the inputs of an Incremental: input Input with the
// box that starts at Start (one entry per axis after the batch) replaced by
// Values, of shape [rows, box sizes...]; the box must lie inside the input.
type Patch struct {
	Input  string
	Start  []int
	Values *tensor.Tensor
}

// Region reports, for one node, the box an Incremental recomputed per copy
// over the values it computed: Box is the largest box (per axis after the
// batch) and equals Shape when the node ran on whole tensors.
type Region struct {
	Node   string
	OpType string
	Shape  []int // the output's shape after the batch
	Box    []int
	Full   bool
	// MACs is the number of multiply-adds per output element of a
	// convolution (0 for other ops).
	MACs int
}

// Incremental runs the model once on inputs and keeps every value it
// computes, for Eval. inputs may name intermediate tensors too (a layer's
// value, injected as Options.Inject does). rows is the batch size: inputs
// whose first dimension is rows hold one example per row (every copy
// repeats them); other inputs, and o.Inject, are the same for every copy. o.Outputs names the one output
// Eval returns (empty: the model's first output); o's other fields are
// ignored.
func (m *Model) Incremental(ctx context.Context, inputs map[string]*tensor.Tensor, rows int, o *Options) (*Incremental, error) {
	if o == nil {
		o = &Options{}
	}
	if rows < 1 {
		return nil, fmt.Errorf("incremental: rows %d must be positive", rows)
	}
	outName := m.OutputNames()[0]
	if len(o.Outputs) > 1 {
		return nil, fmt.Errorf("incremental: %d outputs asked for, it computes one", len(o.Outputs))
	}
	if len(o.Outputs) == 1 {
		outName = o.Outputs[0]
	}
	out, ok := m.slots[outName]
	if !ok {
		return nil, fmt.Errorf("incremental: the model has no tensor named %q", outName)
	}
	// Inputs that are not model inputs are injected (a layer's value).
	feeds := map[string]*tensor.Tensor{}
	injected := map[string]*tensor.Tensor{}
	for name, t := range o.Inject {
		injected[name] = t
	}
	for name, t := range inputs {
		if _, ok := m.inSlot[name]; ok {
			feeds[name] = t
		} else {
			injected[name] = t
		}
	}
	inject := map[int]bool{}
	for name := range injected {
		if s, ok := m.slots[name]; ok {
			inject[s] = true
		}
	}
	// Every slot the output depends on is kept, except those inside the
	// chains that the pass may fuse.
	inner := map[int]bool{}
	for _, f := range m.fusions {
		ok := !inject[f.out]
		for _, s := range f.inner {
			ok = ok && !inject[s] && s != out
		}
		if ok {
			for _, s := range f.inner {
				inner[s] = true
			}
		}
	}
	need := make([]bool, len(m.names))
	var mark func(s int)
	mark = func(s int) {
		if need[s] {
			return
		}
		need[s] = true
		if inject[s] || m.consts[s] != nil {
			return
		}
		if ni := m.prod[s]; ni >= 0 {
			for _, in := range m.nodes[ni].in {
				if in >= 0 {
					mark(in)
				}
			}
		}
	}
	mark(out)
	var taps []string
	for s, ok := range need {
		if ok && m.prod[s] >= 0 && !inner[s] && s != out {
			taps = append(taps, m.names[s])
		}
	}
	p, err := m.Forward(ctx, feeds, &Options{Inject: injected, Outputs: []string{outName}, Taps: taps})
	if err != nil {
		return nil, err
	}
	b := &Incremental{m: m, rows: rows, out: out, vals: p.vals, kind0: make([]uint8, len(m.names)), full: 0.9, stats: map[int]*Region{}}
	for name, t := range inputs {
		if s, ok := m.slots[name]; ok && t != nil && t.Rank() > 0 && t.Shape[0] == rows {
			b.kind0[s] = kRows
		}
	}
	fusedAt := map[int]cnode{}
	for _, f := range m.fusions {
		// A chain ran fused when its head ran, its other nodes did not,
		// and its output has a value that was not injected.
		if p.ran[f.head] && !p.ran[f.skip[0]] && !inject[f.out] && p.vals[f.out] != nil {
			fusedAt[f.head] = f.fused
		}
	}
	for ni, cn := range m.nodes {
		if !p.ran[ni] {
			continue
		}
		if f, ok := fusedAt[ni]; ok {
			cn = f
		}
		st := &incStep{cn: cn}
		in := make([]*tensor.Tensor, len(cn.in))
		kind := kConst
		for i, s := range cn.in {
			if s >= 0 {
				if b.vals[s] == nil {
					return nil, fmt.Errorf("incremental: %s: the base pass did not keep input %q", cn.node, m.names[s])
				}
				in[i] = b.vals[s]
				kind = max(kind, b.kind0[s])
			}
		}
		if l, ok := cn.kernel.(op.Local); ok && len(cn.out) == 1 && cn.out[0] >= 0 {
			st.rule, st.local = safeLocal(l, in)
		}
		if kind == kRows && !st.local {
			kind = kOther
		}
		for _, s := range cn.out {
			if s >= 0 {
				b.kind0[s] = kind
			}
		}
		b.steps = append(b.steps, st)
	}
	b.last = make([]int, len(m.names))
	for s := range b.last {
		b.last[s] = -1
	}
	for si, st := range b.steps {
		for _, s := range st.cn.in {
			if s >= 0 {
				b.last[s] = si
			}
		}
	}
	return b, nil
}

// safeLocal asks a kernel for its local rule, turning a panic into no rule.
func safeLocal(l op.Local, in []*tensor.Tensor) (r op.LocalRule, ok bool) {
	defer func() {
		if recover() != nil {
			r, ok = op.LocalRule{}, false
		}
	}()
	return l.Local(in)
}

// Local: the kernel's rule, with the ReLU applied after its crop kernel
// (an elementwise rule runs the fused kernel itself on crops).
func (r reluAfter) Local(in []*tensor.Tensor) (op.LocalRule, bool) {
	l, ok := r.Kernel.(op.Local)
	if !ok {
		return op.LocalRule{}, false
	}
	rule, ok := l.Local(in)
	if !ok {
		return op.LocalRule{}, false
	}
	if rule.Elementwise {
		return rule, true
	}
	k := rule.Kernel
	if k == nil {
		k = r.Kernel
	}
	rule.Kernel = reluAfter{Kernel: k, relu: r.relu}
	return rule, true
}

// Base returns the output of the base pass.
func (b *Incremental) Base() *tensor.Tensor { return b.vals[b.out] }

// incVal is a slot's value for the copies of one Eval.
type incVal struct {
	kind  uint8 // kBox or kFull (the zero incVal: the base value)
	start [][]int
	size  []int
	t     *tensor.Tensor
}

const (
	kBase uint8 = iota
	kBox
	kFull
)

// Eval returns the output for each patch, block after block: rows
// len(patches)·rows, the rows of patch k at k·rows. The patches must all
// change the same input over boxes of the same size.
func (b *Incremental) Eval(ctx context.Context, patches []Patch) (*tensor.Tensor, error) {
	if len(patches) == 0 {
		return nil, errors.New("incremental: no patches")
	}
	m := b.m
	name := patches[0].Input
	s, ok := m.slots[name]
	if !ok || b.vals[s] == nil || b.kind0[s] != kRows || b.vals[s].DType != tensor.Float32 {
		return nil, fmt.Errorf("incremental: %q is not a float32 input given per row", name)
	}
	x := b.vals[s]
	r := x.Rank()
	if patches[0].Values == nil {
		return nil, errors.New("incremental: patch 0 has no values")
	}
	size := patches[0].Values.Shape
	if len(size) != r || size[0] != b.rows {
		return nil, fmt.Errorf("incremental: patch 0 values have shape %v, want [%d, box...] of rank %d", size, b.rows, r)
	}
	size = size[1:]
	P := len(patches)
	v := incVal{kind: kBox, size: slices.Clone(size), start: make([][]int, P)}
	v.t = tensor.New(append([]int{P * b.rows}, size...)...)
	per := tensor.Size(size) * b.rows
	for k, pt := range patches {
		if pt.Input != name || pt.Values == nil || pt.Values.DType != tensor.Float32 || !tensor.SameShape(pt.Values.Shape[1:], size) || pt.Values.Shape[0] != b.rows || len(pt.Values.F) != per {
			return nil, fmt.Errorf("incremental: patch %d does not change input %q over a box of size %v like patch 0", k, name, size)
		}
		if len(pt.Start) != r-1 {
			return nil, fmt.Errorf("incremental: patch %d starts at %v, want %d coordinates", k, pt.Start, r-1)
		}
		for a, st := range pt.Start {
			if st < 0 || st+size[a] > x.Shape[a+1] {
				return nil, fmt.Errorf("incremental: patch %d box at %v of size %v leaves input %q of shape %v", k, pt.Start, size, name, x.Shape)
			}
		}
		v.start[k] = slices.Clone(pt.Start)
		copy(v.t.F[k*per:], pt.Values.F)
	}
	st := make([]incVal, len(m.names))
	st[s] = v
	for si, step := range b.steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		cn := step.cn
		changed := false
		for _, s := range cn.in {
			if s >= 0 && st[s].kind != kBase {
				changed = true
			}
		}
		if !changed && cn.out[0] >= 0 && b.kind0[cn.out[0]] != kOther {
			continue
		}
		if changed && step.local {
			ov, ok, err := b.local(step, st, P)
			if err != nil {
				return nil, fmt.Errorf("%s: incremental: %w", cn.node, err)
			}
			if ok {
				st[cn.out[0]] = ov
				b.note(si, step, ov)
				b.free(st, si)
				continue
			}
		}
		in := make([]*tensor.Tensor, len(cn.in))
		for i, s := range cn.in {
			if s >= 0 {
				in[i] = b.whole(s, st[s], P)
			}
		}
		out, err := safeForward(cn, in)
		if err != nil {
			return nil, err
		}
		for i, s := range cn.out {
			if s >= 0 {
				st[s] = incVal{kind: kFull, t: out[i]}
			}
		}
		if cn.out[0] >= 0 {
			b.note(si, step, st[cn.out[0]])
		}
		b.free(st, si)
	}
	return b.whole(b.out, st[b.out], P), nil
}

// free drops the values of one Eval that no step after step si reads.
func (b *Incremental) free(st []incVal, si int) {
	for _, s := range b.steps[si].cn.in {
		if s >= 0 && s != b.out && b.last[s] == si {
			st[s] = incVal{}
		}
	}
}

// whole returns slot s's value for all P copies as one tensor.
func (b *Incremental) whole(s int, v incVal, P int) *tensor.Tensor {
	base := b.vals[s]
	switch {
	case v.kind == kFull:
		return v.t
	case v.kind == kBase && b.kind0[s] != kRows:
		return base
	}
	t := tensor.Zeros(base.DType, append([]int{P * base.Shape[0]}, base.Shape[1:]...))
	n := base.Len()
	par.For(P, 1, func(lo, hi int) {
		for k := lo; k < hi; k++ {
			switch base.DType {
			case tensor.Float32:
				copy(t.F[k*n:(k+1)*n], base.F)
			case tensor.Int64:
				copy(t.I[k*n:(k+1)*n], base.I)
			case tensor.Bool:
				copy(t.B[k*n:(k+1)*n], base.B)
			}
			if v.kind == kBox {
				shape := base.Shape[1:]
				row := tensor.Size(shape)
				boxRow := tensor.Size(v.size)
				zero := make([]int, len(shape))
				for r := 0; r < b.rows; r++ {
					dst := t.F[(k*b.rows+r)*row : (k*b.rows+r+1)*row]
					src := v.t.F[(k*b.rows+r)*boxRow : (k*b.rows+r+1)*boxRow]
					copyBox(dst, shape, v.start[k], src, v.size, zero, v.size)
				}
			}
		}
	})
	return t
}

// note records the box a step computed.
func (b *Incremental) note(si int, step *incStep, v incVal) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if step.cn.out[0] < 0 || b.vals[step.cn.out[0]] == nil {
		return
	}
	base := b.vals[step.cn.out[0]]
	if base == nil {
		return
	}
	rg := b.stats[si]
	if rg == nil {
		rg = &Region{Node: step.cn.node.Name, OpType: step.cn.node.OpType, Shape: slices.Clone(base.Shape[1:])}
		if step.cn.node.OpType == "Conv" && len(step.cn.in) > 1 && b.vals[step.cn.in[1]] != nil {
			w := b.vals[step.cn.in[1]]
			rg.MACs = w.Len() / max(w.Shape[0], 1)
		}
		b.stats[si] = rg
	}
	box := rg.Shape
	if v.kind == kBox {
		box = v.size
	} else {
		rg.Full = true
	}
	if rg.Box == nil {
		rg.Box = slices.Clone(box)
	}
	for a := range box {
		rg.Box[a] = max(rg.Box[a], box[a])
	}
}

// Regions returns, for each node that Eval ran so far, in order, the box it
// recomputed per copy (the largest seen).
func (b *Incremental) Regions() []Region {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Region
	for si := range b.steps {
		if rg := b.stats[si]; rg != nil {
			out = append(out, *rg)
		}
	}
	return out
}

// local computes a step's output over the box its changed inputs reach,
// or reports false when the box is too large (or the inputs do not fit
// the rule) and the step must run whole.
func (b *Incremental) local(step *incStep, st []incVal, P int) (incVal, bool, error) {
	if step.rule.Elementwise {
		return b.elementwise(step, st, P)
	}
	cn := step.cn
	for i, s := range cn.in {
		if i > 0 && s >= 0 && (st[s].kind != kBase || b.kind0[s] != kConst) {
			return incVal{}, false, nil
		}
	}
	s0 := cn.in[0]
	v := st[s0]
	x := b.vals[s0]
	y := b.vals[cn.out[0]]
	if x == nil || y == nil {
		return incVal{}, false, nil
	}
	axes := step.rule.Axes
	if v.kind != kBox || x.DType != tensor.Float32 || len(axes) != x.Rank()-1 || y.Rank() != x.Rank() {
		return incVal{}, false, nil
	}
	// The output box of each copy, then one size for all.
	ov := incVal{kind: kBox, start: make([][]int, P), size: make([]int, len(axes))}
	lo := make([][]int, P)
	for k := range P {
		lo[k] = make([]int, len(axes))
		for a, ar := range axes {
			l, h := v.start[k][a], v.start[k][a]+v.size[a]
			switch ar.Kind {
			case op.Whole:
				l, h = 0, ar.OutN
			case op.Window:
				l = max(0, ceilDiv(l+ar.Pad-(ar.K-1)*ar.D, ar.S))
				h = min(ar.OutN, floorDiv(h-1+ar.Pad, ar.S)+1)
				l = min(l, ar.OutN-1)
				h = max(h, l+1)
			}
			lo[k][a] = l
			ov.size[a] = max(ov.size[a], h-l)
		}
	}
	if float64(tensor.Size(ov.size)) > b.full*float64(tensor.Size(y.Shape[1:])) {
		return incVal{}, false, nil
	}
	for k := range P {
		ov.start[k] = make([]int, len(axes))
		for a, ar := range axes {
			ov.start[k][a] = min(lo[k][a], ar.OutN-ov.size[a])
		}
	}
	// The crop of (padded) input 0 each copy's box reads.
	src, off := b.padded(step)
	srcShape := src.Shape[1:]
	crop := make([]int, len(axes))
	for a, ar := range axes {
		switch ar.Kind {
		case op.Same:
			crop[a] = ov.size[a]
		case op.Whole:
			crop[a] = ar.InN
		case op.Window:
			crop[a] = (ov.size[a]-1)*ar.S + (ar.K-1)*ar.D + 1
		}
	}
	cropLen := tensor.Size(crop)
	xin := tensor.New(append([]int{P * b.rows}, crop...)...)
	boxRow := tensor.Size(v.size)
	srcRow := tensor.Size(srcShape)
	par.For(P, 1, func(k0, k1 int) {
		cs := make([]int, len(axes))
		bs := make([]int, len(axes))
		for k := k0; k < k1; k++ {
			for a, ar := range axes {
				switch ar.Kind {
				case op.Same:
					cs[a] = ov.start[k][a]
				case op.Whole:
					cs[a] = 0
				case op.Window:
					cs[a] = ov.start[k][a] * ar.S
				}
				bs[a] = v.start[k][a] + off[a]
			}
			for r := 0; r < b.rows; r++ {
				dst := xin.F[(k*b.rows+r)*cropLen : (k*b.rows+r+1)*cropLen]
				copyBox(dst, crop, make([]int, len(axes)), src.F[r*srcRow:(r+1)*srcRow], srcShape, cs, crop)
				overlay(dst, crop, cs, v.t.F[(k*b.rows+r)*boxRow:(k*b.rows+r+1)*boxRow], v.size, bs)
			}
		}
	})
	in := make([]*tensor.Tensor, len(cn.in))
	in[0] = xin
	for i, s := range cn.in {
		if i > 0 && s >= 0 {
			in[i] = b.vals[s]
		}
	}
	kern := step.rule.Kernel
	if kern == nil {
		kern = cn.kernel
	}
	out, err := safeForward(cnode{node: cn.node, kernel: kern, in: cn.in, out: cn.out}, in)
	if err != nil {
		return incVal{}, false, err
	}
	want := append([]int{P * b.rows}, ov.size...)
	if len(out) == 0 || out[0] == nil || !tensor.SameShape(out[0].Shape, want) {
		return incVal{}, false, fmt.Errorf("the crop kernel gave shape %v, want %v", shapeOf(out), want)
	}
	ov.t = out[0]
	return ov, true, nil
}

func shapeOf(out []*tensor.Tensor) []int {
	if len(out) == 0 || out[0] == nil {
		return nil
	}
	return out[0].Shape
}

// padded returns input 0 of a step padded along its Window axes (with the
// rule's PadValue), computed once, and the offset of the input in it per
// axis after the batch.
func (b *Incremental) padded(step *incStep) (*tensor.Tensor, []int) {
	x := b.vals[step.cn.in[0]]
	axes := step.rule.Axes
	off := make([]int, len(axes))
	shape := make([]int, len(axes))
	same := true
	for a, ar := range axes {
		shape[a] = ar.PaddedLen()
		if ar.Kind == op.Window {
			off[a] = ar.Pad
		}
		same = same && shape[a] == x.Shape[a+1] && off[a] == 0
	}
	if same {
		return x, off
	}
	step.once.Do(func() {
		t := tensor.New(append([]int{x.Shape[0]}, shape...)...)
		if v := step.rule.PadValue; v != 0 {
			for i := range t.F {
				t.F[i] = v
			}
		}
		// The part of the input inside the padded extent.
		xs := x.Shape[1:]
		size := make([]int, len(axes))
		for a := range axes {
			size[a] = min(xs[a], shape[a]-off[a])
		}
		row, prow := tensor.Size(xs), tensor.Size(shape)
		for r := 0; r < x.Shape[0]; r++ {
			copyBox(t.F[r*prow:(r+1)*prow], shape, off, x.F[r*row:(r+1)*row], xs, make([]int, len(axes)), size)
		}
		step.pad = t
	})
	return step.pad, off
}

// elementwise computes an elementwise step over the union of its changed
// inputs' boxes.
func (b *Incremental) elementwise(step *incStep, st []incVal, P int) (incVal, bool, error) {
	cn := step.cn
	y := b.vals[cn.out[0]]
	if y == nil || y.Rank() < 2 || y.Shape[0] != b.rows {
		return incVal{}, false, nil
	}
	ys := y.Shape[1:]
	R := len(ys)
	// whole[a]: some changed input broadcasts along axis a, or the inputs
	// are joined along it.
	whole := make([]bool, R)
	join := step.rule.JoinAxis - 1
	if join >= R {
		return incVal{}, false, nil
	}
	if join >= 0 {
		whole[join] = true
	}
	for _, s := range cn.in {
		if s < 0 {
			continue
		}
		x := b.vals[s]
		switch {
		case st[s].kind == kFull:
			return incVal{}, false, nil
		case st[s].kind == kBox || b.kind0[s] == kRows:
			if x.DType != tensor.Float32 || x.Rank() != R+1 || x.Shape[0] != b.rows {
				return incVal{}, false, nil
			}
			for a := range R {
				if x.Shape[a+1] != ys[a] && a != join {
					if x.Shape[a+1] != 1 {
						return incVal{}, false, nil
					}
					if st[s].kind == kBox {
						whole[a] = true
					}
				}
			}
		}
	}
	ov := incVal{kind: kBox, start: make([][]int, P), size: make([]int, R)}
	lo := make([][]int, P)
	for k := range P {
		l, h := make([]int, R), make([]int, R)
		first := true
		for _, s := range cn.in {
			if s < 0 || st[s].kind != kBox {
				continue
			}
			v := st[s]
			for a := range R {
				bl, bh := v.start[k][a], v.start[k][a]+v.size[a]
				if whole[a] {
					bl, bh = 0, ys[a]
				}
				if first {
					l[a], h[a] = bl, bh
				} else {
					l[a], h[a] = min(l[a], bl), max(h[a], bh)
				}
			}
			first = false
		}
		lo[k] = l
		for a := range R {
			ov.size[a] = max(ov.size[a], h[a]-l[a])
		}
	}
	if float64(tensor.Size(ov.size)) > b.full*float64(tensor.Size(ys)) {
		return incVal{}, false, nil
	}
	for k := range P {
		ov.start[k] = make([]int, R)
		for a := range R {
			ov.start[k][a] = min(lo[k][a], ys[a]-ov.size[a])
		}
	}
	// Constants must not vary along an axis that is cropped.
	in := make([]*tensor.Tensor, len(cn.in))
	for i, s := range cn.in {
		if s < 0 {
			continue
		}
		x := b.vals[s]
		if st[s].kind == kBase && b.kind0[s] != kRows {
			if join >= 0 {
				return incVal{}, false, nil // joined inputs all have rows
			}
			for a := 0; a < x.Rank(); a++ {
				oa := a - (x.Rank() - (R + 1)) // the output axis it aligns with
				if x.Shape[a] == 1 || oa < 0 {
					continue
				}
				if oa == 0 || ov.size[oa-1] != ys[oa-1] {
					return incVal{}, false, nil
				}
			}
			in[i] = x
			continue
		}
		// A crop of x over the box (size 1 along its broadcast axes).
		xs := x.Shape[1:]
		crop := make([]int, R)
		for a := range R {
			crop[a] = min(ov.size[a], xs[a])
		}
		c := tensor.New(append([]int{P * b.rows}, crop...)...)
		v := st[s]
		cropLen, row := tensor.Size(crop), tensor.Size(xs)
		boxRow := tensor.Size(v.size)
		par.For(P, 1, func(k0, k1 int) {
			cs := make([]int, R)
			for k := k0; k < k1; k++ {
				for a := range R {
					if xs[a] == ys[a] {
						cs[a] = ov.start[k][a]
					} else {
						cs[a] = 0
					}
				}
				for r := 0; r < b.rows; r++ {
					dst := c.F[(k*b.rows+r)*cropLen : (k*b.rows+r+1)*cropLen]
					copyBox(dst, crop, make([]int, R), x.F[r*row:(r+1)*row], xs, cs, crop)
					if v.kind == kBox {
						overlay(dst, crop, cs, v.t.F[(k*b.rows+r)*boxRow:(k*b.rows+r+1)*boxRow], v.size, v.start[k])
					}
				}
			}
		})
		in[i] = c
	}
	out, err := safeForward(cn, in)
	if err != nil {
		return incVal{}, false, err
	}
	want := append([]int{P * b.rows}, ov.size...)
	if len(out) == 0 || out[0] == nil || !tensor.SameShape(out[0].Shape, want) {
		return incVal{}, false, fmt.Errorf("the op gave shape %v on crops, want %v", shapeOf(out), want)
	}
	ov.t = out[0]
	return ov, true, nil
}

// copyBox copies the box of size sz from src (shape sshape, box at sstart)
// to dst (shape dshape, box at dstart); all are per row (axes after the
// batch).
func copyBox(dst []float32, dshape, dstart []int, src []float32, sshape, sstart, sz []int) {
	R := len(sz)
	if R == 0 {
		dst[0] = src[0]
		return
	}
	for _, v := range sz {
		if v <= 0 {
			return
		}
	}
	dst0, src0 := 0, 0
	dstr, srcr := 1, 1
	dstrides, sstrides := make([]int, R), make([]int, R)
	for a := R - 1; a >= 0; a-- {
		dstrides[a], sstrides[a] = dstr, srcr
		dst0 += dstart[a] * dstr
		src0 += sstart[a] * srcr
		dstr *= dshape[a]
		srcr *= sshape[a]
	}
	inner := sz[R-1]
	idx := make([]int, R-1)
	for {
		do, so := dst0, src0
		for a, i := range idx {
			do += i * dstrides[a]
			so += i * sstrides[a]
		}
		copy(dst[do:do+inner], src[so:so+inner])
		a := R - 2
		for ; a >= 0; a-- {
			idx[a]++
			if idx[a] < sz[a] {
				break
			}
			idx[a] = 0
		}
		if a < 0 {
			return
		}
	}
}

// overlay writes into dst (a crop of shape cshape starting at cstart in
// some coordinates) the part of box (shape bsize, starting at bstart in the
// same coordinates) that falls inside it.
func overlay(dst []float32, cshape, cstart []int, box []float32, bsize, bstart []int) {
	R := len(cshape)
	ds, ss, sz := make([]int, R), make([]int, R), make([]int, R)
	for a := range R {
		l := max(cstart[a], bstart[a])
		h := min(cstart[a]+cshape[a], bstart[a]+bsize[a])
		if h <= l {
			return
		}
		ds[a], ss[a], sz[a] = l-cstart[a], l-bstart[a], h-l
	}
	copyBox(dst, cshape, ds, box, bsize, ss, sz)
}

// floorDiv returns floor(a/b) for b > 0.
func floorDiv(a, b int) int {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// ceilDiv returns ceil(a/b) for b > 0.
func ceilDiv(a, b int) int { return -floorDiv(-a, b) }
