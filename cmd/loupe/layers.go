package main

import (
	"flag"
	"fmt"
	"io"
)

// cmdLayers lists the layers of a model a user can name.
func cmdLayers(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("layers", flag.ContinueOnError)
	fs.SetOutput(stderr)
	model := fs.String("model", "", "ONNX model file (\"demo\": the built-in model)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	m, err := loadModel(*model)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%-28s %-20s %-18s %s\n", "module", "op", "shape (batch 1)", "tensor")
	for _, l := range m.Layers() {
		mod := l.Module
		if mod == "" {
			mod = "-"
		}
		fmt.Fprintf(stdout, "%-28s %-20s %-18s %s\n", mod, l.OpType, fmt.Sprint(l.Shape), l.Output)
	}
	return nil
}
