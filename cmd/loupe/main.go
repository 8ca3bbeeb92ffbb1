// Command loupe explains machine-learning models from the terminal: which
// input features, neurons and layers drove a prediction.
//
//	loupe demo [--out dir]                 run several methods on the built-in model
//	loupe explain --model m.onnx --input x.npy|cat.jpg|folder [--preset imagenet] --method IntegratedGradients [--target pred|3] [--param n_steps=200] [--layer layer4] --out dir
//	loupe layers --model m.onnx            the model's inputs and the layers a user can name
//	loupe methods                          the methods, their parameters and defaults
//	loupe insights [--model m.onnx --data dir] [--addr localhost:8080]   browse predictions and attributions in a web app
//
// Exit status: 0 on success, 1 on a failure while running, 2 on bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/internal/demo"
	"github.com/loupe-ml/loupe/internal/explain"
)

// usageError marks errors in how loupe was called (exit status 2).
type usageError struct{ error }

// asUsage makes an error of the request itself (explain.RequestError) a
// usage error.
func asUsage(err error) error {
	var re *explain.RequestError
	if errors.As(err, &re) {
		return usageError{err}
	}
	return err
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "loupe:", err)
	var ue usageError
	if errors.As(err, &ue) {
		os.Exit(2)
	}
	os.Exit(1)
}

const usage = `usage:
  loupe demo [--out dir] [--quiet]
  loupe explain --model m.onnx --input x.npy|image.png|folder [--input ...] --method NAME [--target pred|T] [--param k=v]... [--layer L]
                [--baseline v | --baselines b.npy] [--extra name=file.npy] [--preset imagenet | --resize N --crop N --mean m,m,m --std s,s,s]
                [--classes names.txt] [--top 5] [--sign S] [--views V,V] [--format png|svg|both|none] [--out dir] [--quiet]
  loupe layers --model m.onnx [--all]
  loupe methods
  loupe insights [--model m.onnx]... [--layer L]... [--detector d.json] [--data dir | --input x.npy...] [--labels labels.csv] [--classes names.txt] [--tokens t.txt] [--vocab v.txt] [--features f.txt] [--addr host:port]
  loupe serve --model NAME=m.onnx [--model ...] [--addr host:port] [--token T] [--allow-remote]
  loupe robust --model m.onnx --input x.npy|image.png [--attack FGSM|PGD] ...      (loupe robust -h for all flags)
  loupe influence --train dir --test dir [--method TracInCP|...] ...            (loupe influence -h)
  loupe tcav --model m.onnx --input x.npy --concepts dir --layers a,b --target T  (loupe tcav -h)
  loupe batch --model m.onnx --data DIR --method NAME --out OUT [--runner direct|prism|flink|spark|dataflow] ...  (loupe batch -h)`

// run runs a command. A panic (a bug, never bad input) becomes an
// "internal error" that main reports with exit status 1, not 2, the status
// of bad usage.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error: %v", r)
		}
	}()
	if len(args) == 0 {
		return usageError{errors.New("no command\n" + usage)}
	}
	switch args[0] {
	case "demo":
		return cmdDemo(ctx, args[1:], stdout, stderr)
	case "explain":
		return cmdExplain(ctx, args[1:], stdout, stderr)
	case "layers":
		return cmdLayers(args[1:], stdout, stderr)
	case "methods":
		return cmdMethods(stdout)
	case "insights":
		return cmdInsights(ctx, args[1:], stdout, stderr, nil)
	case "serve":
		return cmdServe(ctx, args[1:], stdout, stderr, nil)
	case "robust":
		return cmdRobust(ctx, args[1:], stdout, stderr)
	case "influence":
		return cmdInfluence(ctx, args[1:], stdout, stderr)
	case "tcav":
		return cmdTCAV(ctx, args[1:], stdout, stderr)
	case "batch":
		return cmdBatch(ctx, args[1:], stdout, stderr, nil)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	return usageError{fmt.Errorf("unknown command %q\n%s", args[0], usage)}
}

// progressBar reports progress on w, or nothing when quiet: a bar
// redrawn in place when w is a terminal, else (a log, a pipe) one plain
// line when the work is done, so that logs do not fill with carriage
// returns.
func progressBar(w io.Writer, label string, quiet bool) func(done, total int) {
	if quiet {
		return nil
	}
	start := time.Now()
	tty := isTerminal(w)
	return func(done, total int) {
		if total <= 0 {
			return
		}
		elapsed := time.Since(start).Round(100 * time.Millisecond)
		if !tty {
			if done >= total {
				fmt.Fprintf(w, "%s: %d/%d done in %s\n", label, done, total, elapsed)
			}
			return
		}
		const width = 30
		n := min(done*width/total, width)
		fmt.Fprintf(w, "\r%s [%s%s] %d/%d %s", label, strings.Repeat("#", n), strings.Repeat(".", width-n), done, total, elapsed)
		if done >= total {
			fmt.Fprintln(w)
		}
	}
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// loadModel loads an ONNX file, or the built-in model for "demo".
func loadModel(path string) (*engine.Model, error) {
	if path == "" {
		return nil, usageError{errors.New("--model is required (an .onnx file, or \"demo\" for the built-in model)")}
	}
	if path == "demo" {
		return demo.Model()
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	return engine.Load(path)
}

// multi is a flag that may be repeated.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, " ") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

// floatList reads "0.485,0.456,0.406" (empty: nil).
func floatList(flag, s string) ([]float64, error) {
	if s == "" {
		return nil, nil
	}
	var out []float64
	for _, p := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil {
			return nil, usageError{fmt.Errorf("%s %q: want numbers separated by commas", flag, s)}
		}
		out = append(out, v)
	}
	return out, nil
}

// parseFlags parses a command's flags; an unknown flag's error names the
// nearest known ones ("did you mean").
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err == nil {
		return nil
	}
	if name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -"); ok {
		var known []string
		fs.VisitAll(func(f *flag.Flag) { known = append(known, f.Name) })
		if near := explain.Nearest(strings.TrimLeft(name, "-"), known); len(near) > 0 {
			return usageError{fmt.Errorf("%w (did you mean --%s?)", err, strings.Join(near, " or --"))}
		}
	}
	return usageError{err}
}
