package engine

import (
	"context"
	"fmt"
	"slices"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/internal/par"
	"github.com/loupe-ml/loupe/tensor"
	"github.com/viterin/vek/vek32"
)

// Options choose what a forward pass computes and keeps.
type Options struct {
	// Taps names intermediate tensors whose values the pass keeps, to be
	// read with Pass.Value.
	Taps []string
	// Inject replaces named tensors with the given values: the nodes that
	// would compute them do not run, and the network runs on from there.
	// The model inputs that only fed those nodes need not be given.
	Inject map[string]*tensor.Tensor
	// Record keeps every intermediate value so that Pass.Backward can run.
	// Without it the pass frees each value once its last reader has run.
	Record bool
	// Outputs names the tensors the pass must compute; empty means the
	// model's outputs. Taps are computed in any case.
	Outputs []string
	// Fuse lets a pass that records run Conv -> BatchNormalization
	// [-> Relu] chains as one folded convolution, and Add -> Relu as one
	// addition, as a pass without Record always does (when nothing inside
	// a chain is asked for, tapped or injected): faster, and it keeps
	// less. Its Backward refuses gradients with respect to a tensor inside
	// a chain or to a chain's weights, and rules for a node inside a
	// fused chain; other gradients equal the unfused pass's up to float32
	// rounding.
	Fuse bool
	// Rules, with Fuse, are the rules the pass's Backward will take: a
	// chain is fused only if none of its nodes has a rule, except that a
	// Conv -> BatchNormalization -> Relu chain whose Relu alone has one
	// runs as the folded convolution followed by the Relu node (DeepLift,
	// guided backpropagation).
	Rules Rules
}

// Pass is the result of one forward evaluation. It is not safe for
// concurrent use, but many passes of one Model may run at once.
type Pass struct {
	m      *Model
	vals   []*tensor.Tensor
	ran    []bool // per node index: whether it ran
	inject map[int]bool
	record bool
	want   []int // slots asked for
	// fused holds, per node index, the fusion the pass ran in place of
	// that node's chain (see Options.Fuse).
	fused map[int]*fusion
	// owned and pinned: buffers the pass allocated for kernels, and those
	// of them that must not be reused (see buffers.go); released: Release
	// was called.
	owned, pinned map[*float32]bool
	released      bool
	gowned        map[*float32]bool // gradient buffers Backward allocated
	// bgrads and braw: the gradients (and raw gradients) of the running
	// Backward, which recycling must not reuse.
	bgrads, braw []*tensor.Tensor
}

// Forward runs the model on inputs (by name). It returns an error naming the
// input when one is missing or of the wrong type or shape, and naming the node
// when an op fails.
func (m *Model) Forward(ctx context.Context, inputs map[string]*tensor.Tensor, o *Options) (*Pass, error) {
	if o == nil {
		o = &Options{}
	}
	p := &Pass{m: m, vals: make([]*tensor.Tensor, len(m.names)), ran: make([]bool, len(m.nodes)), inject: map[int]bool{}, record: o.Record,
		owned: map[*float32]bool{}, pinned: map[*float32]bool{}, gowned: map[*float32]bool{}}
	copy(p.vals, m.consts)

	for name, t := range o.Inject {
		s, ok := m.slots[name]
		if !ok {
			return nil, fmt.Errorf("inject: the model has no tensor named %q", name)
		}
		if err := t.Check(); err != nil {
			return nil, fmt.Errorf("inject %q: %w", name, err)
		}
		p.vals[s] = t
		p.inject[s] = true
	}
	for name := range inputs {
		if _, ok := m.inSlot[name]; !ok {
			if _, ok := o.Inject[name]; !ok {
				return nil, fmt.Errorf("the model has no input named %q (inputs: %v)", name, m.inputNames())
			}
		}
	}

	// Slots asked for.
	want := o.Outputs
	if len(want) == 0 {
		want = m.OutputNames()
	}
	for _, name := range append(slices.Clip(want), o.Taps...) {
		s, ok := m.slots[name]
		if !ok {
			return nil, fmt.Errorf("the model has no tensor named %q", name)
		}
		p.want = append(p.want, s)
	}

	// Which nodes must run: walk back from what is wanted, stopping at
	// injected tensors and constants.
	need := make([]bool, len(m.names))
	var mark func(s int)
	mark = func(s int) {
		if need[s] {
			return
		}
		need[s] = true
		if p.inject[s] || m.consts[s] != nil {
			return
		}
		if ni := m.prod[s]; ni >= 0 {
			p.ran[ni] = true
			for _, in := range m.nodes[ni].in {
				if in >= 0 {
					mark(in)
				}
			}
		}
	}
	for _, s := range p.want {
		mark(s)
	}

	// Inputs that are needed must be given and valid.
	sym := map[string]int{}
	for _, in := range m.inputs {
		s := m.slots[in.Name]
		if !need[s] || p.inject[s] {
			continue
		}
		t, ok := inputs[in.Name]
		if !ok || t == nil {
			return nil, fmt.Errorf("missing input %q", in.Name)
		}
		if err := checkInput(in, t, sym); err != nil {
			return nil, err
		}
		p.vals[s] = t
	}

	keep := make([]bool, len(m.names))
	for _, s := range p.want {
		keep[s] = true
	}
	// Without recording, chains such as Conv -> BatchNormalization -> Relu
	// run as one node when nothing inside them is asked for.
	if (!p.record || o.Fuse) && len(m.fusions) > 0 {
		p.fused = p.useFusions(keep, o.Rules)
	}
	node := p.node

	// Reference counts, to free values early when not recording.
	var refs []int
	if !p.record {
		refs = make([]int, len(m.names))
		for ni := range m.nodes {
			if p.ran[ni] {
				for _, s := range node(ni).in {
					if s >= 0 {
						refs[s]++
					}
				}
			}
		}
	}

	in := make([]*tensor.Tensor, 0, 8)
	for ni := range m.nodes {
		if !p.ran[ni] {
			continue
		}
		cn := node(ni)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		in = in[:0]
		for _, s := range cn.in {
			if s < 0 {
				in = append(in, nil)
			} else {
				in = append(in, p.vals[s])
			}
		}
		var out []*tensor.Tensor
		var err error
		if _, ok := cn.kernel.(op.Allocating); ok {
			out, err = safeForwardAlloc(cn, in, p.alloc)
			// By its contract an allocating kernel returns no input; an
			// output that is one keeps that input's buffer out of the pool.
			for _, t := range out {
				for _, x := range in {
					if t != nil && x != nil && len(t.F) > 0 && len(x.F) > 0 && &t.F[0] == &x.F[0] {
						p.pin(x)
					}
				}
			}
		} else {
			// Another kernel may return a view of an input (Reshape).
			for _, x := range in {
				p.pin(x)
			}
			out, err = safeForward(cn, in)
		}
		if err != nil {
			return nil, err
		}
		for i, s := range cn.out {
			if s >= 0 && !p.inject[s] {
				p.vals[s] = out[i]
			}
		}
		if refs != nil {
			for _, s := range cn.in {
				if s < 0 {
					continue
				}
				refs[s]--
				if refs[s] == 0 && !keep[s] && m.consts[s] == nil && m.prod[s] >= 0 {
					p.recycle(p.vals[s])
					p.vals[s] = nil
				}
			}
		}
	}
	return p, nil
}

func (m *Model) inputNames() []string {
	names := make([]string, len(m.inputs))
	for i, in := range m.inputs {
		names[i] = in.Name
	}
	return names
}

// checkInput checks a runtime input against its declaration. Symbolic
// dimensions (such as "batch") must agree across inputs.
func checkInput(in Input, t *tensor.Tensor, sym map[string]int) error {
	if err := t.Check(); err != nil {
		return fmt.Errorf("input %q: %w", in.Name, err)
	}
	if in.DType != 0 && t.DType != in.DType {
		return fmt.Errorf("input %q is %s, the model wants %s", in.Name, t.DType, in.DType)
	}
	if in.Shape == nil {
		return nil
	}
	if len(t.Shape) != len(in.Shape) {
		return fmt.Errorf("input %q has shape %v, the model wants %v", in.Name, t.Shape, in.Shape)
	}
	for i, d := range in.Shape {
		switch {
		case d.Value >= 0:
			if t.Shape[i] != d.Value {
				return fmt.Errorf("input %q has shape %v, the model wants %v (dimension %d)", in.Name, t.Shape, in.Shape, i)
			}
		case d.Param != "":
			if v, ok := sym[d.Param]; ok && v != t.Shape[i] {
				return fmt.Errorf("input %q has %s=%d in dimension %d, but another input has %s=%d", in.Name, d.Param, t.Shape[i], i, d.Param, v)
			}
			sym[d.Param] = t.Shape[i]
		}
	}
	return nil
}

// Value returns the value of a named tensor computed by the pass: an output,
// a tap, an input, an injected tensor or a constant; with Record, any tensor
// the pass computed.
func (p *Pass) Value(name string) (*tensor.Tensor, error) {
	s, ok := p.m.slots[name]
	if !ok {
		return nil, fmt.Errorf("the model has no tensor named %q", name)
	}
	if p.vals[s] == nil {
		if p.released {
			return nil, fmt.Errorf("tensor %q: %w", name, errReleased)
		}
		return nil, fmt.Errorf("tensor %q was not computed or not kept by this pass (ask for it in Options.Taps)", name)
	}
	return p.vals[s], nil
}

// Output returns the model's i-th output.
func (p *Pass) Output(i int) (*tensor.Tensor, error) {
	if i < 0 || i >= len(p.m.outputs) {
		return nil, fmt.Errorf("output index %d out of range: the model has %d outputs", i, len(p.m.outputs))
	}
	return p.Value(p.m.names[p.m.outputs[i]])
}

// Rule is a backward rule for one node: given the node's inputs, outputs and
// the gradient arriving at its outputs, it returns the gradient to pass to
// each input (nil for none). RuleContext.Default gives the op's own gradient.
type Rule func(c *RuleContext) ([]*tensor.Tensor, error)

// Rules chooses the backward rule of each node for one backward pass.
// A nil Rules, or a nil Rule for a node, means the op's own gradient.
type Rules interface {
	Rule(n *graph.Node) Rule
}

// RawGradients is implemented by Rules that want RuleContext.RawGradOut.
type RawGradients interface {
	RawGradients() bool
}

// OpRules assigns rules by op type ("Relu", "Conv", ...).
type OpRules map[string]Rule

// Rule returns the rule for n's op type.
func (r OpRules) Rule(n *graph.Node) Rule { return r[n.OpType] }

// RuleContext is what a Rule sees of one node during a backward pass.
type RuleContext struct {
	Node    *graph.Node
	In      []*tensor.Tensor // the node's inputs (nil for omitted ones)
	Out     []*tensor.Tensor // the node's outputs in the forward pass
	GradOut []*tensor.Tensor // gradient at each output (nil: zero)
	Need    []bool           // which inputs need a gradient
	// RawGradOut is the gradient at each output as it would be if the
	// rules of the nodes that read it were replaced by their ops' own
	// gradients (one level only). Captum's module hooks see this value: a
	// hook on a module's output runs before the hooks of the modules that
	// consume it. It is set only when the Rules implement RawGradients.
	RawGradOut []*tensor.Tensor
	kernel     op.Kernel
	pass       *Pass // whose memory gradients come from (nil: fresh)
}

// Default returns the op's own vector-Jacobian product for this node.
func (c *RuleContext) Default() ([]*tensor.Tensor, error) {
	return c.VJP(c.In, c.Out, c.GradOut, c.Need)
}

// Forward runs the node's op on other inputs (for rules that need the op
// with modified weights, such as LRP's gamma rule).
func (c *RuleContext) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	return safeForward(cnode{node: c.Node, kernel: c.kernel}, in)
}

// VJP returns the op's own vector-Jacobian product at other values.
func (c *RuleContext) VJP(in, out, gout []*tensor.Tensor, need []bool) (g []*tensor.Tensor, err error) {
	d, ok := c.kernel.(op.Differentiable)
	if !ok {
		return nil, fmt.Errorf("%s: op %s has no gradient", c.Node, c.Node.OpType)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: internal error in backward: %v", c.Node, r)
		}
	}()
	if ra, ok := d.(reluAfter); ok && c.pass != nil {
		g, err = ra.backward(in, out, gout, need, c.pass)
	} else {
		g, err = backwardIn(d, in, out, gout, need, c.pass)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: backward: %w", c.Node, err)
	}
	return g, nil
}

// Backward computes gradients of the scalar L = sum over named tensors t of
// <seeds[t], t> (a seed is dL/dt and has t's shape) with respect to each
// tensor named in wrt: model inputs, injected tensors or any intermediate
// tensor of the pass. The pass must have been run with Record. rules, when
// not nil, replace the backward rule of the nodes it chooses. A wrt tensor
// that L does not depend on gets a zero gradient.
func (p *Pass) Backward(ctx context.Context, seeds map[string]*tensor.Tensor, wrt []string, rules Rules) (map[string]*tensor.Tensor, error) {
	if !p.record {
		return nil, fmt.Errorf("backward needs a forward pass run with Options.Record")
	}
	if p.released {
		return nil, fmt.Errorf("backward: %w", errReleased)
	}
	if rules != nil {
		for _, f := range p.fused {
			if n := p.ruled(rules, f); n != nil {
				return nil, fmt.Errorf("a backward rule for %s, which the pass ran inside a fused chain (run it without Options.Fuse, or with these rules in Options.Rules)", n)
			}
		}
	}
	m := p.m
	grads := make([]*tensor.Tensor, len(m.names))
	var raw []*tensor.Tensor
	if rg, ok := rules.(RawGradients); ok && rg.RawGradients() {
		raw = make([]*tensor.Tensor, len(m.names))
	}
	p.bgrads, p.braw = grads, raw
	defer func() { p.bgrads, p.braw = nil, nil }()
	// Which slots depend on a wrt tensor (and so need gradients).
	req := make([]bool, len(m.names))
	wslots := make([]int, len(wrt))
	for i, name := range wrt {
		s, ok := m.slots[name]
		if !ok {
			return nil, fmt.Errorf("gradient with respect to %q: the model has no tensor of that name", name)
		}
		if p.vals[s] == nil {
			return nil, fmt.Errorf("gradient with respect to %q: the pass did not compute it", name)
		}
		if p.vals[s].DType != tensor.Float32 {
			return nil, fmt.Errorf("gradient with respect to %q: it is %s, not float32", name, p.vals[s].DType)
		}
		if err := p.fusedWrt(s); err != nil {
			return nil, fmt.Errorf("gradient with respect to %q: %w", name, err)
		}
		wslots[i] = s
		req[s] = true
	}
	for ni := range m.nodes {
		if !p.ran[ni] {
			continue
		}
		cn := p.node(ni)
		any := false
		for _, s := range cn.in {
			if s >= 0 && req[s] {
				any = true
				break
			}
		}
		if any {
			for _, s := range cn.out {
				if s >= 0 && !p.inject[s] {
					req[s] = true
				}
			}
		}
	}
	for name, g := range seeds {
		s, ok := m.slots[name]
		if !ok {
			return nil, fmt.Errorf("seed for %q: the model has no tensor of that name", name)
		}
		v := p.vals[s]
		if v == nil {
			return nil, fmt.Errorf("seed for %q: the pass did not compute it", name)
		}
		if err := g.Check(); err != nil {
			return nil, fmt.Errorf("seed for %q: %w", name, err)
		}
		if g.DType != tensor.Float32 || !tensor.SameShape(g.Shape, v.Shape) {
			return nil, fmt.Errorf("seed for %q is %s%v, want float32%v", name, g.DType, g.Shape, v.Shape)
		}
		p.accumulate(grads, s, g)
		if raw != nil {
			p.accumulate(raw, s, g)
		}
	}

	for ni := len(m.nodes) - 1; ni >= 0; ni-- {
		cn := p.node(ni)
		if !p.ran[ni] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var gout []*tensor.Tensor
		has := false
		for _, s := range cn.out {
			var g *tensor.Tensor
			if s >= 0 && !p.inject[s] {
				g = grads[s]
			}
			if g != nil {
				has = true
			}
			gout = append(gout, g)
		}
		if !has {
			continue
		}
		need := make([]bool, len(cn.in))
		anyNeed := false
		for i, s := range cn.in {
			if s >= 0 && req[s] && p.vals[s].DType == tensor.Float32 {
				need[i] = true
				anyNeed = true
			}
		}
		if !anyNeed {
			continue
		}
		rc := &RuleContext{Node: cn.node, Out: make([]*tensor.Tensor, len(cn.out)), GradOut: gout, Need: need, kernel: cn.kernel, pass: p}
		for _, s := range cn.in {
			if s >= 0 {
				rc.In = append(rc.In, p.vals[s])
			} else {
				rc.In = append(rc.In, nil)
			}
		}
		for i, s := range cn.out {
			if s >= 0 {
				rc.Out[i] = p.vals[s]
			}
		}
		if raw != nil {
			rc.RawGradOut = make([]*tensor.Tensor, len(cn.out))
			for i, s := range cn.out {
				if s >= 0 && !p.inject[s] {
					rc.RawGradOut[i] = raw[s]
				}
			}
		}
		var gin []*tensor.Tensor
		var err error
		var rule Rule
		if rules != nil {
			rule = rules.Rule(cn.node)
		}
		if rule != nil {
			gin, err = callRule(rule, rc)
		} else {
			gin, err = rc.Default()
		}
		if err != nil {
			return nil, err
		}
		if err := p.addInputGrads(grads, cn, need, gin); err != nil {
			return nil, err
		}
		if raw != nil {
			plain := gin
			if rule != nil {
				if plain, err = rc.Default(); err != nil {
					return nil, err
				}
			}
			if err := p.addInputGrads(raw, cn, need, plain); err != nil {
				return nil, err
			}
		}
		// Free gradients of this node's outputs that nothing else needs.
		for _, s := range cn.out {
			if s >= 0 && !slices.Contains(wslots, s) {
				g := grads[s]
				grads[s] = nil
				if raw != nil {
					raw[s] = nil
				}
				p.recycleGrad(g, grads, raw)
			}
		}
	}
	res := make(map[string]*tensor.Tensor, len(wrt))
	for i, name := range wrt {
		s := wslots[i]
		g := grads[s]
		if g == nil {
			g = tensor.New(p.vals[s].Shape...)
		}
		p.pin(g) // a rule may have returned a value of the pass as a gradient
		res[name] = g
	}
	return res, nil
}

// addInputGrads accumulates a node's input gradients into grads.
func (p *Pass) addInputGrads(grads []*tensor.Tensor, cn cnode, need []bool, gin []*tensor.Tensor) error {
	for i, s := range cn.in {
		if !need[i] || i >= len(gin) || gin[i] == nil {
			continue
		}
		if !tensor.SameShape(gin[i].Shape, p.vals[s].Shape) {
			return fmt.Errorf("%s: gradient for input %d has shape %v, the input has %v", cn.node, i, gin[i].Shape, p.vals[s].Shape)
		}
		p.accumulate(grads, s, gin[i])
	}
	return nil
}

func callRule(rule Rule, rc *RuleContext) (g []*tensor.Tensor, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: backward rule failed: %v", rc.Node, r)
		}
	}()
	g, err = rule(rc)
	if err != nil {
		return nil, fmt.Errorf("%s: backward rule: %w", rc.Node, err)
	}
	return g, nil
}

// accumulate adds g into list[s] (the gradients, or the raw ones, of the
// running Backward), into a new tensor so that tensors returned by kernels
// (which may alias their inputs) are never modified; the sum replaces the
// tensor list[s] held, whose memory goes back to the pool if Backward
// allocated it and no gradient shares it.
func (p *Pass) accumulate(list []*tensor.Tensor, s int, g *tensor.Tensor) {
	if list[s] == nil {
		list[s] = g
		return
	}
	cur := list[s]
	sum := p.galloc(cur.Shape...)
	par.For(len(sum.F), par.MinWork, func(lo, hi int) {
		vek32.Add_Into(sum.F[lo:hi], cur.F[lo:hi], g.F[lo:hi])
	})
	list[s] = sum
	p.recycleGrad(cur, p.bgrads, p.braw)
}
