package main

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/loupe-ml/loupe/engine"
)

// cmdLayers lists the inputs of a model and the layers a user can name.
func cmdLayers(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("layers", flag.ContinueOnError)
	fs.SetOutput(stderr)
	model := fs.String("model", "", "ONNX model file (\"demo\": the built-in model)")
	all := fs.Bool("all", false, "list every node, without folding the runs of shape computations (Shape, Gather, Unsqueeze, ...) that recurrent and transformer exports have")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	m, err := loadModel(*model)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "inputs:")
	var rows [][]string
	rows = append(rows, []string{"name", "type", "shape"})
	for _, in := range m.Inputs() {
		rows = append(rows, []string{in.Name, in.DType.String(), dimsString(in)})
	}
	writeTable(stdout, "  ", rows)
	fmt.Fprintln(stdout)
	fmt.Fprintln(stdout, "layers (name one with --layer: its module path, or a tensor):")
	rows = [][]string{{"module", "op", "shape (batch 1)", "tensor"}}
	layers := m.Layers()
	known := false // shapes are nil for scalars, and for all when the dry run failed
	for _, l := range layers {
		known = known || l.Shape != nil
	}
	for i := 0; i < len(layers); {
		l := layers[i]
		if !*all && isPlumbing(l) {
			j := i + 1
			for j < len(layers) && isPlumbing(layers[j]) && layers[j].Module == l.Module {
				j++
			}
			if j-i >= 2 {
				var ops []string
				for _, p := range layers[i:j] {
					if !slices.Contains(ops, p.OpType) {
						ops = append(ops, p.OpType)
					}
				}
				rows = append(rows, []string{moduleOf(l), "...", "", fmt.Sprintf("(%d shape computations: %s; --all lists them)", j-i, strings.Join(ops, ", "))})
				i = j
				continue
			}
		}
		shape := "?"
		if known {
			shape = fmt.Sprint(l.Shape)
		}
		rows = append(rows, []string{moduleOf(l), l.OpType, shape, l.Output})
		i++
	}
	writeTable(stdout, "  ", rows)
	return nil
}

// shapeOps are the ops that compute shapes and indices rather than
// features when their output is a scalar or a list.
var shapeOps = map[string]bool{
	"Gather": true, "Unsqueeze": true, "Squeeze": true, "Concat": true, "Cast": true, "Slice": true,
	"Range": true, "Equal": true, "Where": true, "Expand": true, "Reshape": true, "Mul": true,
	"Add": true, "Sub": true, "Div": true, "Floor": true, "Ceil": true, "Identity": true, "Constant": true,
	"ReduceProd": true, "Not": true, "Less": true, "Greater": true,
}

// isPlumbing says whether a node computes a shape rather than features:
// Shape and Size, ConstantOfShape (zeros of a computed shape: an initial
// state), and shape ops with an output of at most one dimension.
func isPlumbing(l engine.Layer) bool {
	switch l.OpType {
	case "Shape", "Size", "ConstantOfShape":
		return true
	}
	return shapeOps[l.OpType] && len(l.Shape) <= 1 // nil: a scalar, or unknown
}

func moduleOf(l engine.Layer) string {
	if l.Module == "" {
		return "-"
	}
	return l.Module
}

// dimsString writes an input's declared shape, symbolic sizes by name.
func dimsString(in engine.Input) string {
	if in.Shape == nil {
		return "(not declared)"
	}
	parts := make([]string, len(in.Shape))
	for i, d := range in.Shape {
		parts[i] = d.String()
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// writeTable writes rows with each column as wide as its widest cell
// (the last column unpadded), each line after indent.
func writeTable(w io.Writer, indent string, rows [][]string) {
	var widths []int
	for _, r := range rows {
		for c, cell := range r {
			if c >= len(widths) {
				widths = append(widths, 0)
			}
			widths[c] = max(widths[c], len(cell))
		}
	}
	for _, r := range rows {
		var b strings.Builder
		b.WriteString(indent)
		for c, cell := range r {
			if c == len(r)-1 {
				b.WriteString(cell)
				break
			}
			fmt.Fprintf(&b, "%-*s  ", widths[c], cell)
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}
