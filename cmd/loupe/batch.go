package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/loupe-ml/loupe/internal/batch"
	"github.com/loupe-ml/loupe/internal/demo"
)

// init hands the process to Beam's worker harness when a Beam runner
// started it as a worker (on a cluster the runner runs this binary
// itself); it must run before main reads its command.
func init() {
	if batch.IsWorker(os.Args) {
		batch.ServeWorker()
	}
}

const batchUsage = `usage: loupe batch --model m.onnx --data DIR --method NAME [--target T|pred] [--param k=v]... [--layer L] [--baseline v]
                   [--resize N --crop N --mean m,m,m --std s,s,s --gray] [--batch N] [--metrics infidelity,sensitivity_max]
                   [--labels labels.csv [--classes names.txt]] --out OUT [--runner direct|prism|flink|spark|dataflow]
                   [--endpoint host:port] [Beam's own flags, e.g. --environment_type LOOPBACK --job_name j --project p]`

// cmdBatch explains every example of a folder as an Apache Beam pipeline.
// exec, if not nil, runs the pipeline instead of Beam's runner (tests).
func cmdBatch(ctx context.Context, args []string, stdout, stderr io.Writer, exec func(context.Context, string, *beam.Pipeline) error) error {
	fs := flag.NewFlagSet("batch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, batchUsage)
		fs.PrintDefaults()
	}
	var cfg batch.Config
	var params multi
	var metricList, labels, classFile, runner, endpoint, beamLog string
	var quiet bool
	fs.StringVar(&cfg.Model, "model", "", "ONNX model file (\"demo\": the built-in model)")
	fs.StringVar(&cfg.Data, "data", "", "folder of examples: .npy arrays (batch first) and .png/.jpg pictures")
	fs.StringVar(&cfg.Method, "method", "IntegratedGradients", "attribution method (see loupe methods)")
	fs.StringVar(&cfg.Target, "target", "", "output explained for every example: an index, an index tuple such as (0,2), or pred (the predicted class)")
	fs.Var(&params, "param", "method parameter name=value (repeatable)")
	fs.StringVar(&cfg.Layer, "layer", "", "layer for layer methods: module path (layer4, fc) or tensor name")
	fs.Float64Var(&cfg.Baseline, "baseline", 0, "baseline value for methods that take one")
	fs.StringVar(&cfg.Out, "out", "loupe-batch", "folder of the results: <file>.npy per example and manifest.jsonl")
	fs.IntVar(&cfg.Batch, "batch", 0, fmt.Sprintf("files per call of the method, for methods that explain each example independently of the others (the others run file by file); more than 1 is faster, but the attributions differ from explain's by float rounding (default %d)", batch.DefaultBatch))
	fs.StringVar(&metricList, "metrics", "", "metrics per example, separated by commas: "+strings.Join(batch.MetricNames(), ", "))
	fs.StringVar(&labels, "labels", "", "CSV file of file,class lines: accuracy and mean attribution per class in the summary")
	fs.StringVar(&classFile, "classes", "", "class names, one a line (for --labels given by name)")
	fs.StringVar(&runner, "runner", batch.DefaultRunner, "Apache Beam runner: "+strings.Join(batch.Runners(), ", "))
	fs.StringVar(&endpoint, "endpoint", "", "job service of a cluster runner (flink, spark, universal), host:port")
	fs.StringVar(&beamLog, "beam-log", "warn", "Apache Beam's log level: debug, info, warn or error")
	fs.BoolVar(&quiet, "quiet", false, "no progress bar")
	image := imageFlags(fs)
	own, beamFlags := batch.SplitBeamFlags(fs, args)
	if err := fs.Parse(own); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q\n%s", fs.Arg(0), batchUsage)}
	}
	if cfg.Model == "" || cfg.Data == "" {
		return usageError{errors.New("--model and --data are required\n" + batchUsage)}
	}
	if !slices.Contains(batch.Runners(), runner) {
		return usageError{fmt.Errorf("--runner %q: want one of %s", runner, strings.Join(batch.Runners(), ", "))}
	}
	if endpoint != "" {
		beamFlags = append(beamFlags, "endpoint="+endpoint)
	}
	cfg.Params = params
	if metricList != "" {
		for _, m := range strings.Split(metricList, ",") {
			cfg.Metrics = append(cfg.Metrics, strings.TrimSpace(m))
		}
	}
	var err error
	if cfg.Pre, err = image(); err != nil {
		return err
	}
	if err := cfg.Check(); err != nil {
		return usageError{err}
	}
	if cfg.Model != "demo" {
		if _, err := os.Stat(cfg.Model); err != nil {
			return fmt.Errorf("model: %w", err)
		}
	}
	switch beamLog {
	case "debug", "info", "warn", "error":
	default:
		return usageError{fmt.Errorf("--beam-log %q: want debug, info, warn or error", beamLog)}
	}
	o := batch.Options{Runner: runner, BeamFlags: beamFlags, LogLevel: beamLog, Execute: exec}
	if labels != "" {
		var classes []string
		switch {
		case classFile != "":
			b, err := os.ReadFile(classFile)
			if err != nil {
				return fmt.Errorf("--classes: %w", err)
			}
			classes = strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		case cfg.Model == "demo":
			classes = demo.Classes
		}
		if o.Labels, err = batch.ReadLabels(labels, classes); err != nil {
			return err
		}
	}
	where := "in-process"
	switch runner {
	case "prism":
		where = "in-process; prism's job service listens on every network interface while the job runs"
	case "flink", "spark", "universal", "dataflow":
		where = "submitted to " + runner
		if endpoint != "" {
			where += " at " + endpoint
		}
	}
	fmt.Fprintf(stdout, "loupe batch: %s on %s with %s, on Apache Beam (runner %s, %s)\n", cfg.Data, cfg.Model, cfg.Method, runner, where)
	if cfg.Batch > 1 && !batch.Batchable(cfg.Method) {
		fmt.Fprintf(stderr, "loupe batch: %s runs file by file (its attributions of a file would change in a batch, or its calls are already large); --batch ignored\n", cfg.Method)
	}
	if !quiet {
		bar := progressBar(stderr, cfg.Method, false)
		last := -1
		o.Progress = func(done, failed, total int) {
			if done != last {
				last = done
				bar(done, total)
			}
		}
	}
	sum, err := batch.Run(ctx, cfg, o)
	if err != nil {
		return asUsage(err)
	}
	fmt.Fprint(stdout, sum)
	return nil
}
