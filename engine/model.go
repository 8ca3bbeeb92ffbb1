package engine

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/onnx"
	"github.com/loupe-ml/loupe/tensor"
)

// Model is a compiled graph, ready to run. It is immutable once built: any
// number of goroutines may call its methods at once.
type Model struct {
	g       *graph.Graph
	names   []string       // slot -> tensor name
	slots   map[string]int // tensor name -> slot
	consts  []*tensor.Tensor
	nodes   []cnode // nodes that run, topological order
	prod    []int   // slot -> index in nodes of its producer, -1 for inputs and constants
	inputs  []Input
	inSlot  map[string]int // model input name -> index in inputs
	outputs []int          // slots of the graph outputs
	fusions []fusion       // chains a pass without recording may run as one node
	bufs    bufPool        // memory passes no longer use (see buffers.go)
}

type cnode struct {
	node   *graph.Node
	kernel op.Kernel
	in     []int // -1 for an omitted optional input
	out    []int // -1 for an omitted optional output
}

// Input describes one input the model expects.
type Input struct {
	Name  string
	DType tensor.DType
	Shape []graph.Dim // nil when the file declares none
}

// Load reads and compiles the ONNX model in file path.
func Load(path string) (*Model, error) {
	g, err := onnx.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m, err := Compile(g)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// UnsupportedError lists the nodes whose op types loupe cannot run.
type UnsupportedError struct {
	Nodes []*graph.Node
}

// Error lists the unsupported op types with the names of their nodes.
func (e *UnsupportedError) Error() string {
	byOp := map[string][]string{}
	for _, n := range e.Nodes {
		key := n.OpType
		if n.Domain != "" && n.Domain != "ai.onnx" {
			key = n.Domain + "." + n.OpType
		}
		name := n.Name
		if name == "" && len(n.Outputs) > 0 {
			name = "output " + n.Outputs[0]
		}
		byOp[key] = append(byOp[key], name)
	}
	ops := make([]string, 0, len(byOp))
	for k := range byOp {
		ops = append(ops, k)
	}
	sort.Strings(ops)
	var b strings.Builder
	fmt.Fprintf(&b, "unsupported ops in %d nodes:", len(e.Nodes))
	for _, k := range ops {
		names := byOp[k]
		if len(names) > 5 {
			names = append(names[:5:5], fmt.Sprintf("and %d more", len(byOp[k])-5))
		}
		fmt.Fprintf(&b, " %s (%s);", k, strings.Join(names, ", "))
	}
	return strings.TrimSuffix(b.String(), ";")
}

// Compile checks a graph and builds its kernels. Every node whose op type is
// not supported is reported in one *UnsupportedError; nodes whose inputs are
// all constants are evaluated once here.
func Compile(g *graph.Graph) (*Model, error) {
	if g == nil {
		return nil, errors.New("nil graph")
	}
	m := &Model{g: g, slots: map[string]int{}, inSlot: map[string]int{}}
	slot := func(name string) int {
		if s, ok := m.slots[name]; ok {
			return s
		}
		s := len(m.names)
		m.slots[name] = s
		m.names = append(m.names, name)
		m.consts = append(m.consts, nil)
		m.prod = append(m.prod, -1)
		return s
	}
	for name, t := range g.Initializers {
		if err := t.Check(); err != nil {
			return nil, fmt.Errorf("initializer %q: %w", name, err)
		}
		m.consts[slot(name)] = t
	}
	for _, vi := range g.Inputs {
		if _, dup := m.inSlot[vi.Name]; dup {
			return nil, fmt.Errorf("input %q declared twice", vi.Name)
		}
		slot(vi.Name)
		m.inSlot[vi.Name] = len(m.inputs)
		m.inputs = append(m.inputs, Input{Name: vi.Name, DType: vi.DType, Shape: vi.Shape})
	}

	order, err := topoSort(g)
	if err != nil {
		return nil, err
	}
	reg := registry()
	var unsupported []*graph.Node
	defined := map[string]bool{}
	for name := range g.Initializers {
		defined[name] = true
	}
	for _, vi := range g.Inputs {
		defined[vi.Name] = true
	}
	for _, n := range order {
		for i, in := range n.Inputs {
			if in != "" && !defined[in] {
				return nil, fmt.Errorf("%s: input %d %q is not produced by any node, initializer or model input", n, i, in)
			}
		}
		for _, out := range n.Outputs {
			if out == "" {
				continue
			}
			if defined[out] {
				return nil, fmt.Errorf("%s: output %q is defined twice", n, out)
			}
			defined[out] = true
		}
		if n.Domain != "" && n.Domain != "ai.onnx" {
			unsupported = append(unsupported, n)
			continue
		}
		if _, ok := reg[n.OpType]; !ok {
			unsupported = append(unsupported, n)
		}
	}
	if len(unsupported) > 0 {
		return nil, &UnsupportedError{Nodes: unsupported}
	}
	opset := g.Opset()
	if opset == 0 {
		return nil, errors.New("the graph imports no opset of the default ONNX domain")
	}
	for _, n := range order {
		k, err := build(reg[n.OpType], n, opset)
		if err != nil {
			return nil, err
		}
		cn := cnode{node: n, kernel: k, in: make([]int, len(n.Inputs)), out: make([]int, len(n.Outputs))}
		allConst := true
		for i, in := range n.Inputs {
			cn.in[i] = -1
			if in == "" {
				continue
			}
			cn.in[i] = slot(in)
			if m.consts[cn.in[i]] == nil {
				allConst = false
			}
		}
		for i, out := range n.Outputs {
			cn.out[i] = -1
			if out != "" {
				cn.out[i] = slot(out)
			}
		}
		if allConst {
			if err := m.fold(cn); err != nil {
				return nil, err
			}
			continue
		}
		cn.kernel = m.specialize(cn.kernel, cn.in)
		for _, s := range cn.out {
			if s >= 0 {
				m.prod[s] = len(m.nodes)
			}
		}
		m.nodes = append(m.nodes, cn)
	}
	for _, vi := range g.Outputs {
		s, ok := m.slots[vi.Name]
		if !ok {
			return nil, fmt.Errorf("graph output %q is not produced by any node", vi.Name)
		}
		m.outputs = append(m.outputs, s)
	}
	if len(m.outputs) == 0 {
		return nil, errors.New("graph has no outputs")
	}
	m.planFusions()
	return m, nil
}

// specialize gives a kernel that can prepare work on constant inputs (see
// op.Specializer) the constants among the slots in.
func (m *Model) specialize(k op.Kernel, in []int) op.Kernel {
	sp, ok := k.(op.Specializer)
	if !ok {
		return k
	}
	consts := make([]*tensor.Tensor, len(in))
	for i, s := range in {
		if s >= 0 {
			consts[i] = m.consts[s]
		}
	}
	return sp.Specialize(consts)
}

// build runs an op factory, turning a panic into an error naming the node.
func build(f op.Factory, n *graph.Node, opset int) (k op.Kernel, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: internal error while reading its attributes: %v", n, r)
		}
	}()
	k, err = f(n, opset)
	if err == nil && k == nil {
		err = fmt.Errorf("%s: no kernel", n)
	}
	return k, err
}

// fold evaluates a node whose inputs are all constants.
func (m *Model) fold(cn cnode) error {
	in := make([]*tensor.Tensor, len(cn.in))
	for i, s := range cn.in {
		if s >= 0 {
			in[i] = m.consts[s]
		}
	}
	out, err := safeForward(cn, in)
	if err != nil {
		return err
	}
	for i, s := range cn.out {
		if s >= 0 {
			m.consts[s] = out[i]
		}
	}
	return nil
}

// topoSort returns the nodes in an order where every input is produced
// before use (the file's order when it already is one).
func topoSort(g *graph.Graph) ([]*graph.Node, error) {
	producer := map[string]int{}
	for i, n := range g.Nodes {
		for _, o := range n.Outputs {
			if o != "" {
				producer[o] = i
			}
		}
	}
	state := make([]uint8, len(g.Nodes)) // 0 new, 1 visiting, 2 done
	order := make([]*graph.Node, 0, len(g.Nodes))
	var visit func(i int) error
	visit = func(i int) error {
		switch state[i] {
		case 1:
			return fmt.Errorf("%s is part of a cycle", g.Nodes[i])
		case 2:
			return nil
		}
		state[i] = 1
		for _, in := range g.Nodes[i].Inputs {
			if p, ok := producer[in]; ok && in != "" {
				if err := visit(p); err != nil {
					return err
				}
			}
		}
		state[i] = 2
		order = append(order, g.Nodes[i])
		return nil
	}
	for i := range g.Nodes {
		if err := visit(i); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// Inputs returns the inputs the model expects, in the file's order.
func (m *Model) Inputs() []Input { return append([]Input(nil), m.inputs...) }

// OutputNames returns the names of the model's outputs, in the file's order.
func (m *Model) OutputNames() []string {
	names := make([]string, len(m.outputs))
	for i, s := range m.outputs {
		names[i] = m.names[s]
	}
	return names
}

// Graph returns the graph the model was compiled from. It must not be modified.
func (m *Model) Graph() *graph.Graph { return m.g }

// Has reports whether the model has a tensor of that name (an input, an
// initializer, or the output of a node).
func (m *Model) Has(name string) bool {
	_, ok := m.slots[name]
	return ok
}

// Opset returns the model's version of the default ONNX domain.
func (m *Model) Opset() int { return m.g.Opset() }

// safeForward runs a kernel, turning a panic into an error naming the node.
func safeForward(cn cnode, in []*tensor.Tensor) (out []*tensor.Tensor, err error) {
	return safeForwardAlloc(cn, in, nil)
}

// safeForwardAlloc is safeForward with the outputs of an op.Allocating
// kernel from alloc (if not nil).
func safeForwardAlloc(cn cnode, in []*tensor.Tensor, alloc op.Alloc) (out []*tensor.Tensor, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: internal error in forward: %v", cn.node, r)
		}
	}()
	if ak, ok := cn.kernel.(op.Allocating); ok && alloc != nil {
		out, err = ak.ForwardAlloc(in, alloc)
	} else {
		out, err = cn.kernel.Forward(in)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cn.node, err)
	}
	if len(out) < len(cn.out) {
		for i := len(out); i < len(cn.out); i++ {
			if cn.out[i] >= 0 {
				return nil, fmt.Errorf("%s: produced %d outputs, the graph uses %d", cn.node, len(out), len(cn.out))
			}
		}
	}
	return out, nil
}
