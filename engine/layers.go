package engine

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/loupe-ml/loupe/tensor"
)

// Layer is one node of the model as a user sees it: the module it belongs to
// (from the scopes PyTorch's exporter writes in node names), its op type and
// the tensor it computes.
type Layer struct {
	Module string   // "layer4.1.conv2"; empty when the node name has no scope
	Node   string   // the node's name, "/layer4/layer4.1/conv2/Conv"
	OpType string   // "Conv"
	Output string   // the tensor it computes, "/layer4/layer4.1/conv2/Conv_output_0"
	Inputs []string // the tensors it reads that are not constants
	Shape  []int    // the output's shape for a batch of 1, nil if unknown
}

// ModulePath turns a scoped node name ("/layer4/layer4.1/conv2/Conv") into
// the dotted module path a PyTorch user writes ("layer4.1.conv2"). A name
// without scopes gives "".
func ModulePath(nodeName string) string {
	if !strings.HasPrefix(nodeName, "/") {
		return ""
	}
	parts := strings.Split(strings.TrimPrefix(nodeName, "/"), "/")
	var pieces []string // path = pieces joined by dots
	for _, c := range parts[:len(parts)-1] {
		n := len(pieces)
		switch {
		case c == "":
		case n > 0 && strings.HasPrefix(c, strings.Join(pieces, ".")+"."):
			pieces = []string{c} // the exporter already wrote the qualified name
		case n > 0 && strings.HasPrefix(c, pieces[n-1]+"."):
			// A child of a container named relative to it
			// ("/layer2/layer2.0/downsample/downsample.0").
			pieces[n-1] = c
		default:
			pieces = append(pieces, c)
		}
	}
	return strings.Join(pieces, ".")
}

// Layers lists the model's nodes in execution order. Shapes come from one
// evaluation on a batch of 1 (symbolic dimensions set to 1, inputs zero);
// they are nil when that evaluation fails.
func (m *Model) Layers() []Layer {
	shapes := m.dryShapes()
	layers := make([]Layer, 0, len(m.nodes))
	for _, cn := range m.nodes {
		l := Layer{Module: ModulePath(cn.node.Name), Node: cn.node.Name, OpType: cn.node.OpType}
		if len(cn.out) > 0 && cn.out[0] >= 0 {
			l.Output = m.names[cn.out[0]]
			l.Shape = shapes[l.Output]
		}
		for _, s := range cn.in {
			if s >= 0 && m.consts[s] == nil {
				l.Inputs = append(l.Inputs, m.names[s])
			}
		}
		layers = append(layers, l)
	}
	return layers
}

// maxDryLen is the most elements an input of the dry run behind Layers may
// have: a model declaring a larger input (100000x100000) gets no shapes
// rather than an allocation it cannot make.
const maxDryLen = 1 << 26

func (m *Model) dryShapes() (shapes map[string][]int) {
	shapes = map[string][]int{}
	defer func() {
		if r := recover(); r != nil {
			shapes = map[string][]int{}
		}
	}()
	in := map[string]*tensor.Tensor{}
	for _, x := range m.inputs {
		shape := make([]int, len(x.Shape))
		for i, d := range x.Shape {
			shape[i] = max(d.Value, 1)
		}
		if n, err := tensor.CheckedSize(shape); err != nil || n > maxDryLen {
			return shapes
		}
		dt := x.DType
		if dt == 0 {
			dt = tensor.Float32
		}
		in[x.Name] = tensor.Zeros(dt, shape)
	}
	p, err := m.Forward(context.Background(), in, &Options{Record: true})
	if err != nil {
		return shapes
	}
	for s, v := range p.vals {
		if v != nil {
			shapes[m.names[s]] = append([]int(nil), v.Shape...)
		}
	}
	return shapes
}

// Modules returns the module paths that occur in the model, with their
// parents ("layer4", "layer4.1", "layer4.1.conv2"), sorted.
func (m *Model) Modules() []string {
	set := map[string]bool{}
	for _, cn := range m.nodes {
		p := ModulePath(cn.node.Name)
		for p != "" {
			set[p] = true
			i := strings.LastIndex(p, ".")
			if i < 0 {
				break
			}
			p = p[:i]
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// exampleLayer returns a module path of the model, for messages.
func (m *Model) exampleLayer() string {
	for _, cn := range m.nodes {
		if p := ModulePath(cn.node.Name); p != "" {
			return p
		}
	}
	return "layer4"
}

// Resolve turns a layer as a user names it into the tensor it refers to: a
// tensor name is returned as it is; a module path ("layer4", "fc2") gives the
// module's output (the output of its last node), or with input true its
// input (the first non-constant tensor its first node reads from outside the
// module); a node name gives that node's output or first input.
func (m *Model) Resolve(layer string, input bool) (string, error) {
	if layer == "" {
		return "", fmt.Errorf("no layer named (give a module path such as %q, a node or a tensor name; Layers lists them)", m.exampleLayer())
	}
	if !input {
		if _, ok := m.slots[layer]; ok {
			return layer, nil
		}
	}
	inModule := func(path string) bool {
		return path == layer || strings.HasPrefix(path, layer+".")
	}
	var members []cnode
	for _, cn := range m.nodes {
		if inModule(ModulePath(cn.node.Name)) {
			members = append(members, cn)
		}
	}
	if len(members) == 0 {
		for _, cn := range m.nodes {
			if cn.node.Name == layer {
				members = append(members, cn)
			}
		}
	}
	if len(members) == 0 {
		if input {
			// A tensor: its producer's first non-constant input.
			if s, ok := m.slots[layer]; ok && m.prod[s] >= 0 {
				members = append(members, m.nodes[m.prod[s]])
			}
		}
		if len(members) == 0 {
			return "", fmt.Errorf("no layer named %q: name a module (%s) or a tensor", layer, m.suggest(layer))
		}
	}
	if !input {
		last := members[len(members)-1]
		return m.names[last.out[0]], nil
	}
	inside := map[int]bool{}
	for _, cn := range members {
		for _, s := range cn.out {
			if s >= 0 {
				inside[s] = true
			}
		}
	}
	for _, cn := range members {
		for _, s := range cn.in {
			if s >= 0 && m.consts[s] == nil && !inside[s] {
				return m.names[s], nil
			}
		}
	}
	return "", fmt.Errorf("layer %q reads no input from outside itself", layer)
}

// suggest lists a few module names, the nearest first.
func (m *Model) suggest(name string) string {
	mods := m.Modules()
	depth := func(s string) int { return strings.Count(s, ".") }
	sort.SliceStable(mods, func(i, j int) bool {
		ci, cj := commonPrefix(mods[i], name), commonPrefix(mods[j], name)
		if ci != cj {
			return ci > cj
		}
		return depth(mods[i]) < depth(mods[j])
	})
	if len(mods) > 8 {
		mods = append(mods[:8], "...")
	}
	if len(mods) == 0 {
		return "the model has no scoped node names; see Layers"
	}
	return "e.g. " + strings.Join(mods, ", ")
}

func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// LastConv returns the last convolution of the model in execution order, the
// usual layer for GradCAM. It returns an error listing the op types present
// when the model has no convolution.
func (m *Model) LastConv() (Layer, error) {
	layers := m.Layers()
	for i := len(layers) - 1; i >= 0; i-- {
		if layers[i].OpType == "Conv" {
			return layers[i], nil
		}
	}
	seen := map[string]bool{}
	var ops []string
	for _, l := range layers {
		if !seen[l.OpType] {
			seen[l.OpType] = true
			ops = append(ops, l.OpType)
		}
	}
	mods := m.Modules()
	if len(mods) > 10 {
		mods = append(mods[:10], "...")
	}
	return Layer{}, fmt.Errorf("the model has no Conv node (its ops: %s); name a layer instead, such as %s", strings.Join(ops, ", "), strings.Join(mods, ", "))
}
