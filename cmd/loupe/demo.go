package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/loupe-ml/loupe/internal/demo"
)

// cmdDemo explains the built-in model with several methods and writes the
// report.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if demoTask(args) == "detection" {
		return cmdDemoDetection(ctx, args, stdout, stderr) // detect.go
	}
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String("task", "classification", "classification, or detection (the built-in detector: boxes and per-box maps)")
	out := fs.String("out", "loupe-demo", "folder for the report")
	quiet := fs.Bool("quiet", false, "no progress bar")
	per := fs.Int("per-class", 2, "images of each shape")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if t := demoTask(args); t != "classification" {
		return usageError{fmt.Errorf("--task %q: want classification or detection", t)}
	}
	rep, err := demo.Run(ctx, *out, *per, progressBar(stderr, "explaining", *quiet))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s\n", filepath.Join(*out, "index.html"))
	fmt.Fprintf(stdout, "share of positive attribution on the shape (an even spread would give %.2f):\n", rep.ChanceInMask)
	for _, m := range rep.Methods {
		fmt.Fprintf(stdout, "  %-20s %.2f\n", m, rep.MeanInMask[m])
	}
	fmt.Fprintln(stdout, "to browse more examples and methods in a web app: loupe insights")
	return nil
}
