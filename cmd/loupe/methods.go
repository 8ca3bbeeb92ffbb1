package main

import (
	"fmt"
	"io"

	"github.com/loupe-ml/loupe/internal/methods"
)

// cmdMethods lists the methods, their parameters and defaults.
func cmdMethods(stdout io.Writer) error {
	for _, n := range methods.Names() {
		m, _ := methods.Lookup(n)
		layer := ""
		if m.Layer {
			layer = " (--layer)"
		}
		fmt.Fprintf(stdout, "%s%s: %s\n", n, layer, m.Doc)
		for _, p := range m.Params {
			fmt.Fprintf(stdout, "    %s (default %q): %s\n", p.Name, p.Default, p.Doc)
		}
	}
	return nil
}
