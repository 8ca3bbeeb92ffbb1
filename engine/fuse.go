package engine

import (
	"fmt"
	"math"
	"slices"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/internal/par"
	"github.com/loupe-ml/loupe/tensor"
	"github.com/viterin/vek/vek32"
)

// fusion is a chain run as one node: Conv -> BatchNormalization [-> Relu]
// as one convolution whose weights and bias have the normalization folded
// in, or Add -> Relu (a residual block's end) as one addition; a ReLU is
// applied in place to the head's output. The model keeps the chain's nodes
// as they are: a pass uses the fusion only when it does not record, or
// records with Options.Fuse and Options.Rules choose no rule for a node of
// the chain (trim: the chain without its Relu, when only that has one),
// and nothing it asks for, taps or injects lies inside the chain. Folding
// changes the outputs by float32 rounding only.
type fusion struct {
	head  int   // index in Model.nodes of the Conv or Add
	skip  []int // the nodes it replaces after the head
	inner []int // slots computed inside the chain (not produced by a fused pass)
	out   int   // the slot of the chain's last output
	// allInputs: every input of the head is an input of the fused node
	// (an Add); a convolution keeps only its data input (its weights and
	// bias are replaced by folded constants).
	allInputs bool
	// trim is, for a chain that ends in a Relu, the chain without it (for
	// a pass whose rules cover the Relu).
	trim *fusion
	// fused is the node a pass runs instead of the chain: the head's node,
	// its inputs with the weights and bias replaced by folded constants,
	// the chain's last output, and the convolution's kernel followed by
	// the ReLU when the chain has one.
	fused cnode
}

// planFusions finds the chains that a forward pass without recording may
// run fused, and adds their folded weights and biases as constants.
func (m *Model) planFusions() {
	// reader[s] is the only node reading slot s, -1 when none, -2 when
	// several (a graph output counts as a reader: the caller's).
	readers := make([]int, len(m.names))
	for s := range readers {
		readers[s] = -1
	}
	for ni, cn := range m.nodes {
		for _, s := range cn.in {
			if s >= 0 {
				if readers[s] == -1 {
					readers[s] = ni
				} else {
					readers[s] = -2
				}
			}
		}
	}
	for _, s := range m.outputs {
		readers[s] = -2
	}
	reader := func(s int) int { return max(readers[s], -1) }
	for ni, cn := range m.nodes {
		if cn.node.OpType != "Conv" || len(cn.out) != 1 || cn.out[0] < 0 {
			continue
		}
		bi := reader(cn.out[0])
		if bi < 0 {
			continue
		}
		bn := m.nodes[bi]
		if bn.node.OpType != "BatchNormalization" || len(bn.in) != 5 || bn.in[0] != cn.out[0] {
			continue
		}
		w, b, ok := m.foldBatchNorm(cn, bn)
		if !ok {
			continue
		}
		f := fusion{head: ni, skip: []int{bi}, inner: []int{cn.out[0]}, out: bn.out[0]}
		ws, bs := m.constSlot(w), m.constSlot(b)
		kernel := m.specialize(cn.kernel, []int{-1, ws, bs})
		f.fused = cnode{node: cn.node, kernel: kernel, in: []int{cn.in[0], ws, bs}, out: []int{f.out}}
		if ri := reader(bn.out[0]); ri >= 0 && m.nodes[ri].node.OpType == "Relu" && len(m.nodes[ri].out) == 1 && m.nodes[ri].out[0] >= 0 {
			trim := f
			f.trim = &trim
			f.skip = []int{bi, ri}
			f.inner = []int{cn.out[0], bn.out[0]}
			f.out = m.nodes[ri].out[0]
			f.fused = cnode{node: cn.node, kernel: reluAfter{Kernel: kernel, relu: m.nodes[ri].kernel}, in: []int{cn.in[0], ws, bs}, out: []int{f.out}}
		}
		m.fusions = append(m.fusions, f)
	}
	// Add -> Relu: the ReLU applied in place to the sum (one pass over the
	// activations instead of two, one tensor less).
	for ni, cn := range m.nodes {
		if cn.node.OpType != "Add" || len(cn.in) != 2 || len(cn.out) != 1 || cn.out[0] < 0 {
			continue
		}
		ri := reader(cn.out[0])
		if ri < 0 {
			continue
		}
		rn := m.nodes[ri]
		if rn.node.OpType != "Relu" || len(rn.in) != 1 || len(rn.out) != 1 || rn.out[0] < 0 {
			continue
		}
		f := fusion{head: ni, skip: []int{ri}, inner: []int{cn.out[0]}, out: rn.out[0], allInputs: true}
		f.fused = cnode{node: cn.node, kernel: reluAfter{Kernel: cn.kernel, relu: rn.kernel}, in: cn.in, out: []int{f.out}}
		m.fusions = append(m.fusions, f)
	}
}

// foldBatchNorm returns the weights and bias of conv cn with the
// normalization bn folded in: W'[m] = W[m]·a[m] and B'[m] = B[m]·a[m] + b[m],
// where bn computes y = x·a + b per channel. It reports false when the
// chain's constants are not all known or their shapes do not fit.
func (m *Model) foldBatchNorm(cn, bn cnode) (w, b *tensor.Tensor, ok bool) {
	if len(cn.in) < 2 || cn.in[1] < 0 || len(bn.out) < 1 || bn.out[0] < 0 {
		return nil, nil, false
	}
	for _, o := range bn.out[1:] {
		if o >= 0 {
			return nil, nil, false
		}
	}
	wt := m.consts[cn.in[1]]
	if wt == nil || wt.DType != tensor.Float32 || wt.Rank() < 3 {
		return nil, nil, false
	}
	ch := wt.Shape[0]
	var cb *tensor.Tensor
	if len(cn.in) > 2 && cn.in[2] >= 0 {
		if cb = m.consts[cn.in[2]]; cb == nil || cb.DType != tensor.Float32 || cb.Len() != ch {
			return nil, nil, false
		}
	}
	var vec [4][]float32 // scale, bias, mean, var
	for i := range vec {
		t := m.consts[bn.in[i+1]]
		if t == nil || t.DType != tensor.Float32 || t.Rank() != 1 || t.Len() != ch {
			return nil, nil, false
		}
		vec[i] = t.F
	}
	eps := float64(bn.node.Float("epsilon", 1e-5))
	w = tensor.New(wt.Shape...)
	b = tensor.New(ch)
	per := wt.Len() / ch
	par.For(ch, par.Grain(per), func(lo, hi int) {
		for c := lo; c < hi; c++ {
			a := float64(vec[0][c]) / math.Sqrt(float64(vec[3][c])+eps)
			shift := float64(vec[1][c]) - float64(vec[2][c])*a
			for i := c * per; i < (c+1)*per; i++ {
				w.F[i] = float32(float64(wt.F[i]) * a)
			}
			bias := 0.0
			if cb != nil {
				bias = float64(cb.F[c])
			}
			b.F[c] = float32(bias*a + shift)
		}
	})
	return w, b, true
}

// constSlot adds a constant that no tensor of the graph names and returns
// its slot.
func (m *Model) constSlot(t *tensor.Tensor) int {
	s := len(m.names)
	m.names = append(m.names, "")
	m.consts = append(m.consts, t)
	m.prod = append(m.prod, -1)
	return s
}

// reluAfter is a kernel followed by a ReLU on its first output, in place;
// relu is the Relu node's own kernel, whose gradient Backward uses.
type reluAfter struct {
	op.Kernel
	relu op.Kernel
}

func (r reluAfter) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	return r.ForwardAlloc(in, nil)
}

// ForwardAlloc runs the kernel with its output from alloc (if not nil and
// the kernel is op.Allocating), then the ReLU in place.
func (r reluAfter) ForwardAlloc(in []*tensor.Tensor, alloc op.Alloc) ([]*tensor.Tensor, error) {
	var out []*tensor.Tensor
	var err error
	if ak, ok := r.Kernel.(op.Allocating); ok && alloc != nil {
		out, err = ak.ForwardAlloc(in, alloc)
	} else {
		out, err = r.Kernel.Forward(in)
	}
	if err != nil || len(out) == 0 || out[0] == nil {
		return out, err
	}
	if out[0].DType != tensor.Float32 {
		return r.relu.Forward(out[:1])
	}
	y := out[0].F
	par.For(len(y), par.MinWork, func(lo, hi int) {
		vek32.MaximumNumber_Inplace(y[lo:hi], 0)
	})
	return out, nil
}

// useFusions switches pass p to the fusions whose chains it runs whole and
// whose inner tensors it neither wants nor injects. It returns, per node
// index, the fusion that node heads (nil when none applies).
func (p *Pass) useFusions(wanted []bool, rules Rules) map[int]*fusion {
	var heads map[int]*fusion
	for i := range p.m.fusions {
		f := &p.m.fusions[i]
		if rules != nil && p.ruled(rules, f) != nil {
			if f.trim == nil || p.ruled(rules, f.trim) != nil {
				continue
			}
			f = f.trim
		}
		ok := p.ran[f.head] && !p.inject[f.out]
		for _, ni := range f.skip {
			ok = ok && p.ran[ni]
		}
		for _, s := range f.inner {
			ok = ok && !wanted[s] && !p.inject[s]
		}
		if !ok {
			continue
		}
		for _, ni := range f.skip {
			p.ran[ni] = false
		}
		if heads == nil {
			heads = map[int]*fusion{}
		}
		heads[f.head] = f
	}
	return heads
}

// ruled returns the first node of chain f for which rules choose a rule,
// or nil.
func (p *Pass) ruled(rules Rules, f *fusion) *graph.Node {
	for _, ni := range append([]int{f.head}, f.skip...) {
		if n := p.m.nodes[ni].node; rules.Rule(n) != nil {
			return n
		}
	}
	return nil
}

// node returns the node the pass runs at index ni: the fused chain it
// heads, if the pass fused it, else the model's node.
func (p *Pass) node(ni int) cnode {
	if f := p.fused[ni]; f != nil {
		return f.fused
	}
	return p.m.nodes[ni]
}

// fusedWrt refuses a gradient with respect to slot s when a fused chain of
// the pass hides it: a tensor inside the chain, or one of the chain's own
// inputs other than the convolution's input (its weights, the
// normalization's parameters), which no node of the fused pass reads.
func (p *Pass) fusedWrt(s int) error {
	for head, f := range p.fused {
		if slices.Contains(f.inner, s) {
			return fmt.Errorf("the pass ran it inside a fused chain (Conv -> BatchNormalization [-> Relu], or Add -> Relu; run it without Options.Fuse)")
		}
		for _, ni := range append([]int{head}, f.skip...) {
			cn := p.m.nodes[ni]
			for i, in := range cn.in {
				if in == s && !(ni == head && (i == 0 || f.allInputs)) && !slices.Contains(f.inner, in) {
					return fmt.Errorf("it is a weight of a folded Conv -> BatchNormalization chain (run the pass without Options.Fuse)")
				}
			}
		}
	}
	return nil
}

// Backward is the vector-Jacobian product of the kernel followed by a
// ReLU: the gradient at the output goes back through the Relu op's own
// gradient (given the output, which is positive exactly where the ReLU's
// input is), then through the kernel (which must not need its own output:
// a convolution and an addition do not).
func (r reluAfter) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	return r.backward(in, out, gout, need, nil)
}

// backward is Backward with the gradients from pass p's memory, when p is
// not nil: the ReLU's gradient, used only inside, goes back to the pool
// once the kernel's gradients are computed.
func (r reluAfter) backward(in, out, gout []*tensor.Tensor, need []bool, p *Pass) ([]*tensor.Tensor, error) {
	d, ok := r.Kernel.(op.Differentiable)
	if !ok {
		return nil, fmt.Errorf("fused kernel has no gradient")
	}
	relu, ok := r.relu.(op.Differentiable)
	if !ok {
		return nil, fmt.Errorf("fused ReLU has no gradient")
	}
	if len(out) == 0 || out[0] == nil || len(gout) == 0 || gout[0] == nil {
		return backwardIn(d, in, nil, gout, need, p)
	}
	y := out[0]
	g, err := backwardIn(relu, []*tensor.Tensor{y}, []*tensor.Tensor{y}, gout[:1], []bool{true}, p)
	if err != nil {
		return nil, fmt.Errorf("fused ReLU: %w", err)
	}
	res, err := backwardIn(d, in, nil, g[:1], need, p)
	if p != nil && err == nil {
		p.recycleGrad(g[0], res, nil)
	}
	return res, err
}
