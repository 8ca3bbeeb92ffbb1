package detect

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// JoinedOutput names the output Join adds to a multi-level model.
const JoinedOutput = "loupe_detect_levels"

// Join joins the outputs of a multi-level grid head into the one output
// that Config decodes and attr.Net explains: it adds to m's graph a
// Reshape of each level's output [N, A*K, H, W] to [N, A*K*H*W] (a level
// [N, A, H, W, K], as YOLOv5's Detect layer returns them in training mode,
// is first transposed to [N, A, K, H, W]) and their Concat along axis 1 (JoinedOutput, the levels in c's order), and
// compiles the graph again, so that gradients flow from the joined output
// back through every level. It returns the new model, whose only output
// is the joined one, and c with each level's grid size read from the
// output's declared shape when the configuration leaves it unset. A level
// naming no output of m, or an output whose declared shape does not match
// its anchors, classes or grid, or an output of m that is no level, is an
// error naming the output. Cost: one
// compilation, no evaluation.
func Join(m *engine.Model, c Config) (*engine.Model, Config, error) {
	if m == nil {
		return nil, c, fmt.Errorf("detect: no model")
	}
	if err := c.Check(); err != nil {
		return nil, c, fmt.Errorf("detect: config: %w", err)
	}
	if c.Layout != Grid || len(c.Levels) == 0 {
		return nil, c, fmt.Errorf("detect: the configuration declares no levels to join")
	}
	c.Levels = slices.Clone(c.Levels)
	g := m.Graph()
	outs := map[string]graph.ValueInfo{}
	var names []string
	for _, o := range g.Outputs {
		outs[o.Name] = o
		names = append(names, o.Name)
	}
	ng := &graph.Graph{Name: g.Name, Inputs: g.Inputs, ValueInfo: g.ValueInfo, Opsets: g.Opsets,
		Initializers: maps.Clone(g.Initializers), Nodes: slices.Clone(g.Nodes),
		Outputs: []graph.ValueInfo{{Name: JoinedOutput, DType: tensor.Float32}}}
	if ng.Initializers == nil {
		ng.Initializers = map[string]*tensor.Tensor{}
	}
	flatShape := JoinedOutput + "_flat_shape"
	fs := tensor.NewInt(2)
	fs.I[0], fs.I[1] = 0, -1
	ng.Initializers[flatShape] = fs
	concat := &graph.Node{Name: JoinedOutput, OpType: "Concat", Outputs: []string{JoinedOutput},
		Attrs: map[string]*graph.Attr{"axis": {Name: "axis", Type: graph.AttrInt, I: 1}}}
	for i := range c.Levels {
		l := &c.Levels[i]
		o, ok := outs[l.Output]
		if !ok {
			return nil, c, fmt.Errorf("detect: level %d: the model has no output %q (its outputs: %s)", i, l.Output, strings.Join(names, ", "))
		}
		five, err := c.levelShape(i, o)
		if err != nil {
			return nil, c, err
		}
		in := l.Output
		if five {
			// [N, A, H, W, K] -> [N, A, K, H, W], a grid's order.
			in = fmt.Sprintf("%s_grid_%d", JoinedOutput, i)
			ng.Nodes = append(ng.Nodes, &graph.Node{Name: in, OpType: "Transpose",
				Inputs: []string{l.Output}, Outputs: []string{in},
				Attrs: map[string]*graph.Attr{"perm": {Name: "perm", Type: graph.AttrInts, Ints: []int64{0, 1, 4, 2, 3}}}})
		}
		flat := fmt.Sprintf("%s_flat_%d", JoinedOutput, i)
		ng.Nodes = append(ng.Nodes, &graph.Node{Name: flat, OpType: "Reshape",
			Inputs: []string{in, flatShape}, Outputs: []string{flat}})
		concat.Inputs = append(concat.Inputs, flat)
	}
	for _, n := range names {
		if !slices.ContainsFunc(c.Levels, func(l Level) bool { return l.Output == n }) {
			return nil, c, fmt.Errorf("detect: the model's output %q is no level of the configuration (%d levels declared for %d outputs)", n, len(c.Levels), len(names))
		}
	}
	ng.Nodes = append(ng.Nodes, concat)
	cm, err := engine.Compile(ng)
	if err != nil {
		return nil, c, fmt.Errorf("detect: joining the levels: %w", err)
	}
	return cm, c, nil
}

// levelShape checks level i's declared output shape against the
// configuration, fills in its grid when unset, and reports whether the
// level is laid out [N, A, H, W, K] (five) rather than [N, A*K, H, W].
func (c Config) levelShape(i int, o graph.ValueInfo) (five bool, err error) {
	l := &c.Levels[i]
	bad := func(format string, a ...any) error {
		return fmt.Errorf("detect: level %d (output %q): "+format, append([]any{i, l.Output}, a...)...)
	}
	if o.DType != tensor.Float32 && o.DType != 0 {
		return false, bad("holds %s, not float32", o.DType)
	}
	na, k := l.anchors(), c.vec()
	what := fmt.Sprintf("%d anchors x (4 box numbers%s + %d classes)", na, map[bool]string{true: " + objectness"}[c.Objectness], len(c.Classes))
	var hw []graph.Dim
	switch len(o.Shape) {
	case 4:
		if ch := o.Shape[1].Value; ch >= 0 && ch != na*k {
			return false, bad("shape %v has %d channels; want %d: %s", o.Shape, ch, na*k, what)
		}
		hw = o.Shape[2:4]
	case 5:
		if a, kk := o.Shape[1].Value, o.Shape[4].Value; (a >= 0 && a != na) || (kk >= 0 && kk != k) {
			return false, bad("shape %v; want [N, %d, H, W, %d]: %s", o.Shape, na, k, what)
		}
		hw, five = o.Shape[2:4], true
	default:
		return false, bad("shape %v (rank %d); want [N, %d, H, W] or [N, %d, H, W, %d]: %s", o.Shape, len(o.Shape), na*k, na, k, what)
	}
	for j, dim := range hw {
		switch d := dim.Value; {
		case d <= 0:
		case l.Grid[j] == 0:
			l.Grid[j] = d
		case l.Grid[j] != d:
			return false, bad("shape %v; the configuration declares a grid of %v", o.Shape, l.Grid)
		}
	}
	if l.Grid[0] <= 0 || l.Grid[1] <= 0 {
		return false, bad("the model does not declare the grid's size; give it in the configuration (grid: [H, W])")
	}
	return five, nil
}

// Open makes the Detector of model m decoded by c: a multi-level grid's
// outputs are joined first (Join) and the net explains the joined output;
// otherwise the net explains m's first output.
func Open(m *engine.Model, c Config) (*Detector, error) {
	if m == nil {
		return nil, fmt.Errorf("detect: no model")
	}
	if err := c.Check(); err != nil {
		return nil, fmt.Errorf("detect: config: %w", err)
	}
	if len(c.Levels) > 0 {
		var err error
		if m, c, err = Join(m, c); err != nil {
			return nil, err
		}
	}
	nt, err := attr.NewNet(m)
	if err != nil {
		return nil, fmt.Errorf("detect: %w", err)
	}
	return &Detector{Net: nt, Config: c}, nil
}

// CAMLayer returns the layer the CAM methods explain a detection on when
// none is named: the model's last convolution, or, for joined levels
// (Config.Levels), the last convolution that every level's output
// depends on. (The last convolution of a multi-level head is one level's
// head: a detection of another level has no gradient there, and its map
// would be empty.)
func (d *Detector) CAMLayer() (string, error) {
	if d == nil || d.Net == nil || d.Net.Model == nil {
		return "", fmt.Errorf("detect: no detector")
	}
	m := d.Net.Model
	if len(d.Config.Levels) == 0 {
		l, err := m.LastConv()
		if err != nil {
			return "", fmt.Errorf("detect: %w", err)
		}
		return l.Output, nil
	}
	producer := map[string]*graph.Node{}
	for _, n := range m.Graph().Nodes {
		for _, o := range n.Outputs {
			producer[o] = n
		}
	}
	// count[t]: how many levels' outputs depend on tensor t.
	count := map[string]int{}
	for _, l := range d.Config.Levels {
		seen := map[string]bool{}
		stack := []string{l.Output}
		for len(stack) > 0 {
			t := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if seen[t] {
				continue
			}
			seen[t] = true
			count[t]++
			if n := producer[t]; n != nil {
				for _, in := range n.Inputs {
					if in != "" && !seen[in] {
						stack = append(stack, in)
					}
				}
			}
		}
	}
	layers := m.Layers()
	for i := len(layers) - 1; i >= 0; i-- {
		if l := layers[i]; l.OpType == "Conv" && count[l.Output] == len(d.Config.Levels) {
			return l.Output, nil
		}
	}
	return "", fmt.Errorf("detect: no convolution feeds all %d levels; name the layer to explain", len(d.Config.Levels))
}
