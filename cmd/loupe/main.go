// Command loupe explains machine-learning models from the terminal: which
// input features, neurons and layers drove a prediction.
//
//	loupe demo [--out dir]                 run several methods on the built-in model
//	loupe explain --model m.onnx --input x.npy --method IntegratedGradients --target 3 [--param n_steps=200] [--layer layer4] --out dir
//	loupe layers --model m.onnx            the layers a user can name
//	loupe methods                          the methods, their parameters and defaults
//	loupe insights [--model m.onnx --data dir] [--addr localhost:8080]   browse predictions and attributions in a web app
//
// Exit status: 0 on success, 1 on a failure while running, 2 on bad usage.
package main

import (
	"context"
	"errors"
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
  loupe explain --model m.onnx --input x.npy|image.png --method NAME [--target T] [--param k=v]... [--layer L]
                [--baseline v | --baselines b.npy] [--extra name=file.npy] [--resize N --crop N --mean m,m,m --std s,s,s] [--out dir] [--quiet]
  loupe layers --model m.onnx
  loupe methods
  loupe insights [--model m.onnx --data dir [--labels labels.csv] [--classes names.txt]] [--addr host:port]
  loupe serve --model NAME=m.onnx [--model ...] [--addr host:port] [--token T] [--allow-remote]`

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
	case "batch":
		return cmdBatch(ctx, args[1:], stdout, stderr, nil)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	return usageError{fmt.Errorf("unknown command %q\n%s", args[0], usage)}
}

// progressBar draws a bar on w, or nothing when quiet.
func progressBar(w io.Writer, label string, quiet bool) func(done, total int) {
	if quiet {
		return nil
	}
	start := time.Now()
	return func(done, total int) {
		if total <= 0 {
			return
		}
		const width = 30
		n := done * width / total
		fmt.Fprintf(w, "\r%s [%s%s] %d/%d %s", label, strings.Repeat("#", n), strings.Repeat(".", width-n), done, total, time.Since(start).Round(100*time.Millisecond))
		if done >= total {
			fmt.Fprintln(w)
		}
	}
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
