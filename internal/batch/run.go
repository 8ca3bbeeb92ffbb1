// Package batch is loupe batch: every example of a folder explained by
// one attribution method, as an Apache Beam pipeline. The same pipeline
// runs in-process (Beam's direct and prism runners) or on a cluster
// (Flink, Spark, Google Dataflow through Beam's portable runners).
//
// Each example is explained through internal/explain, as loupe explain
// does it for that file alone: OUT/<stem>.npy holds the same array.
// OUT/manifest.jsonl has one JSON line per file (Record). Every worker
// writes its files' results as it goes (OUT/<stem>.npy and a part in
// OUT/.parts), so a job that stops can be run again over the same OUT
// and does only what is left; Run gathers the parts into the manifest
// and a Summary at the end.
//
// The package is internal, and the only one that imports Beam, so that
// loupe's other packages and their tests do not build it. Beam's Go SDK
// reads its options from the process's command-line flags
// (flag.CommandLine): Run sets the ones it is given for the time of the
// run and puts them back.
package batch

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	beamlog "github.com/apache/beam/sdks/v2/go/pkg/beam/log"
	"github.com/loupe-ml/loupe/internal/explain"
	"github.com/loupe-ml/loupe/internal/methods"
)

// Options are how a job runs, besides what it computes (Config).
type Options struct {
	// Runner is the Beam runner's name (Runners; "" means DefaultRunner).
	Runner string
	// BeamFlags are Beam's options as name=value ("endpoint=host:8099",
	// "environment_type=LOOPBACK", "project=p", ...): see SplitBeamFlags.
	BeamFlags []string
	// Progress, if set, is called as files are done (failed ones
	// included), about once a second, and once at the end.
	Progress func(done, failed, total int)
	// Labels are the true classes by input file name (ReadLabels), for
	// the accuracy and the mean attribution per class.
	Labels map[string]int
	// LogLevel is Apache Beam's log level (debug, info, warn or error;
	// "": warn). Beam logs to the process's standard error through
	// log/slog's default logger, which it sets.
	LogLevel string
	// Execute runs the pipeline (nil: Beam's runner by name). Tests
	// replace it to see what reaches Beam without running a cluster.
	Execute func(ctx context.Context, runner string, p *beam.Pipeline) error
}

// DefaultRunner is the runner of a job that names none: Beam's direct
// runner, in-process and listening on no port. (prism, Beam's newer
// local runner, serves its job API on every network interface while it
// runs; see docs/batch.md.)
const DefaultRunner = "direct"

// Summary is what a job did.
type Summary struct {
	// Runner ran the pipeline.
	Runner string
	// Total is the number of files in the data folder; Skipped were done
	// by an earlier run over the same OUT; Done were explained by this
	// run; Failed could not be explained (Failures says why, by file).
	Total, Skipped, Done, Failed int
	Failures                     map[string]string
	// Elapsed is the run's time, and PerSecond the files it explained per
	// second.
	Elapsed   time.Duration
	PerSecond float64
	// Manifest is the path of manifest.jsonl.
	Manifest string
	// Labeled counts the explained rows that have a label; Accuracy is
	// the share of them whose predicted class is the label.
	Labeled  int
	Accuracy float64
	// ClassMeans are the files of the mean attribution of each labeled
	// class (OUT/class_means/<class>.npy), by class.
	ClassMeans map[int]string
}

// partsDir holds a part per file, written by the workers.
const partsDir = ".parts"

// partPath is the manifest part of an input.
func partPath(out, input string) string {
	return filepath.Join(out, partsDir, Stem(input)+".json")
}

// Run explains every example of cfg.Data into cfg.Out on a Beam runner,
// skipping the files an earlier run with the same request (model,
// method, parameters, layer, target, baseline, preprocessing, metrics)
// has done, then writes OUT/manifest.jsonl and returns the
// summary. A file that cannot be explained is reported in the manifest
// and the summary; it does not stop the job.
func Run(ctx context.Context, cfg Config, o Options) (*Summary, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	for _, kv := range o.BeamFlags {
		if name, _, _ := strings.Cut(kv, "="); flag.CommandLine.Lookup(name) == nil {
			return nil, fmt.Errorf("--%s: not a flag of Apache Beam's runners", name)
		}
	}
	runner := o.Runner
	if runner == "" {
		runner = DefaultRunner
	}
	if !slices.Contains(Runners(), runner) {
		return nil, fmt.Errorf("runner %q: want one of %s", runner, strings.Join(Runners(), ", "))
	}
	names, err := ListInputs(cfg.Data)
	if err != nil {
		return nil, err
	}
	if cfg.ModelSHA256 == "" {
		if cfg.ModelSHA256, err = ModelSHA256(cfg.Model); err != nil {
			return nil, err
		}
	}
	_, vals, err := explain.Resolve(cfg.Method, cfg.Params)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(cfg.Out, partsDir), 0o755); err != nil {
		return nil, err
	}
	var todo []string // the files this run explains
	for _, n := range names {
		if !done(cfg, vals, n) {
			todo = append(todo, n)
		}
	}
	for _, n := range todo {
		// An earlier failure, or a result of other settings: not done,
		// and not to be counted as done while this run goes.
		if err := os.Remove(partPath(cfg.Out, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	sum := &Summary{Runner: runner, Total: len(names), Skipped: len(names) - len(todo)}
	start := time.Now()
	explained := todo
	if len(todo) > 0 {
		n, err := probe(ctx, cfg, todo)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("stopped; run the same command again over %s to go on: %w", cfg.Out, ctx.Err())
			}
			return nil, err
		}
		todo = todo[n:]
	}
	if len(todo) > 0 {
		if err := runPipeline(ctx, cfg, o, runner, todo, explained); err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("stopped; run the same command again over %s to go on: %w", cfg.Out, ctx.Err())
			}
			return nil, err
		}
	}
	sum.Elapsed = time.Since(start)
	if err := gather(cfg, vals, names, explained, o.Labels, sum); err != nil {
		return nil, err
	}
	if len(explained) > 0 {
		sum.PerSecond = float64(len(explained)) / sum.Elapsed.Seconds()
	}
	return sum, ctx.Err()
}

// probeFiles is how many files the launcher tries before the pipeline.
const probeFiles = 3

// probe explains files on the launcher, before any pipeline starts, until
// one succeeds: when the first probeFiles that could be read all fail,
// the request cannot work (a target the model's output does not take, a
// layer it does not have, inputs of the wrong shape) and the job stops
// with the first error, rather than failing every file on a cluster.
// It returns how many files it did (their results are written).
func probe(ctx context.Context, cfg Config, todo []string) (int, error) {
	w, err := NewWorker(cfg)
	if err != nil {
		return 0, err
	}
	var first error
	failed := 0
	for i, name := range todo {
		recs, err := w.Explain(ctx, []string{name})
		if err != nil {
			return i, err
		}
		rec := recs[0]
		switch {
		case rec.Error == "":
			return i + 1, nil
		case errors.Is(rec.err, errRead):
			continue // a bad file, not a bad request
		}
		if failed++; first == nil {
			first = fmt.Errorf("%s: %w", name, rec.err)
		}
		if failed == probeFiles {
			return i + 1, fmt.Errorf("the first %d files fail, so would the others: %w", failed, first)
		}
	}
	return len(todo), nil
}

// runPipeline runs the pipeline over the files to do, with Beam's flags
// set, reporting progress over the files of the run from the parts the
// workers write.
func runPipeline(ctx context.Context, cfg Config, o Options, runner string, todo, run []string) error {
	restore, err := setBeamFlags(o.BeamFlags)
	if err != nil {
		return err
	}
	defer restore()
	if !beam.Initialized() {
		beam.Init()
	}
	level := o.LogLevel
	if level == "" {
		level = "warn"
	}
	switch level {
	case "debug", "info", "warn", "error":
		beamlog.SetupLogging(level, "text")
	default:
		return fmt.Errorf("Beam log level %q: want debug, info, warn or error", level)
	}
	exec := o.Execute
	if exec == nil {
		exec = execute
	}
	prog := newProgress(cfg, run)
	stop := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		t := time.NewTicker(pollEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				prog.report(o.Progress)
			}
		}
	}()
	err = exec(ctx, runner, Pipeline(cfg, todo))
	close(stop)
	<-polled
	prog.report(o.Progress)
	return err
}

// progress counts the files of a run whose parts are written, reading
// each part once (for its error) however often it is asked.
type progress struct {
	cfg          Config
	run          map[string]bool // stems of the run's files
	seen         map[string]bool
	done, failed int
}

func newProgress(cfg Config, files []string) *progress {
	p := &progress{cfg: cfg, run: map[string]bool{}, seen: map[string]bool{}}
	for _, f := range files {
		p.run[Stem(f)+".json"] = true
	}
	return p
}

// report calls f with the files done, failed and in all.
func (p *progress) report(f func(done, failed, total int)) {
	if f == nil {
		return
	}
	entries, _ := os.ReadDir(filepath.Join(p.cfg.Out, partsDir))
	for _, e := range entries {
		name := e.Name()
		if !p.run[name] || p.seen[name] {
			continue
		}
		b, err := os.ReadFile(filepath.Join(p.cfg.Out, partsDir, name))
		var rec Record
		if err != nil || json.Unmarshal(b, &rec) != nil {
			continue // being written: next time
		}
		p.seen[name] = true
		p.done++
		if rec.Error != "" {
			p.failed++
		}
	}
	f(p.done, p.failed, len(p.run))
}

// readPart reads an input's manifest part.
func readPart(out, input string) (*Record, error) {
	b, err := os.ReadFile(partPath(out, input))
	if err != nil {
		return nil, err
	}
	var rec Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("%s: %w", partPath(out, input), err)
	}
	return &rec, nil
}

// done says whether an earlier run explained an input as this one would:
// its part has no error, the same model, method, layer and parameters,
// and its attributions are there.
func done(cfg Config, vals methods.Values, input string) bool {
	rec, err := readPart(cfg.Out, input)
	if err != nil || rec.Error != "" || rec.Input != input || rec.Method != cfg.Method || rec.Layer != cfg.Layer || rec.ModelSHA256 != cfg.ModelSHA256 || len(rec.Params) != len(vals) {
		return false
	}
	for k, v := range vals {
		if rec.Params[k] != v {
			return false
		}
	}
	if rec.Target != cfg.Target || rec.Baseline != cfg.Baseline || !reflect.DeepEqual(rec.Preprocess, preOf(cfg)) {
		return false
	}
	for _, m := range cfg.Metrics {
		if rec.Metrics[m] == nil {
			return false
		}
	}
	_, err = os.Stat(filepath.Join(cfg.Out, rec.Output))
	return err == nil
}

// gather writes OUT/manifest.jsonl from the parts of the data folder's
// files, in name order, and fills in the summary: counts, failures and,
// with labels, the accuracy and the mean attribution per class.
func gather(cfg Config, vals methods.Values, names, todo []string, labels map[string]int, sum *Summary) error {
	sum.Manifest = filepath.Join(cfg.Out, "manifest.jsonl")
	isNew := map[string]bool{}
	for _, n := range todo {
		isNew[n] = true
	}
	means := newClassMeans()
	correct := 0
	var lines []string
	for _, name := range names {
		rec, err := readPart(cfg.Out, name)
		if err != nil {
			if isNew[name] {
				sum.Failed++
				if sum.Failures == nil {
					sum.Failures = map[string]string{}
				}
				sum.Failures[name] = "no result: the pipeline ended without explaining it"
			}
			continue
		}
		b, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		lines = append(lines, string(b))
		switch {
		case rec.Error != "":
			sum.Failed++
			if sum.Failures == nil {
				sum.Failures = map[string]string{}
			}
			sum.Failures[name] = rec.Error
			continue
		case isNew[name]:
			sum.Done++
		}
		label, ok := labels[name]
		if !ok {
			continue
		}
		for _, p := range rec.Predictions {
			sum.Labeled++
			if len(p.Classes) > 0 && p.Classes[0] == label {
				correct++
			}
		}
		if err := means.add(label, filepath.Join(cfg.Out, rec.Output)); err != nil {
			return err
		}
	}
	if sum.Labeled > 0 {
		sum.Accuracy = float64(correct) / float64(sum.Labeled)
	}
	var err error
	if sum.ClassMeans, err = means.write(filepath.Join(cfg.Out, "class_means")); err != nil {
		return err
	}
	return writeAtomic(sum.Manifest, func(f *os.File) error {
		w := bufio.NewWriter(f)
		for _, l := range lines {
			w.WriteString(l)
			w.WriteByte('\n')
		}
		return w.Flush()
	})
}

// String writes the summary as loupe batch prints it.
func (s *Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d files: %d explained, %d done before, %d failed, in %s", s.Total, s.Done, s.Skipped, s.Failed, s.Elapsed.Round(time.Millisecond))
	if s.PerSecond > 0 {
		fmt.Fprintf(&b, " (%.2f files/s)", s.PerSecond)
	}
	fmt.Fprintf(&b, "\nmanifest: %s\n", s.Manifest)
	if len(s.Failures) > 0 {
		names := make([]string, 0, len(s.Failures))
		for n := range s.Failures {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(&b, "failed: %s: %s\n", n, s.Failures[n])
		}
	}
	if s.Labeled > 0 {
		fmt.Fprintf(&b, "accuracy: %.4f (%d labeled examples)\n", s.Accuracy, s.Labeled)
		classes := make([]int, 0, len(s.ClassMeans))
		for c := range s.ClassMeans {
			classes = append(classes, c)
		}
		sort.Ints(classes)
		for _, c := range classes {
			fmt.Fprintf(&b, "mean attribution of class %d: %s\n", c, s.ClassMeans[c])
		}
	}
	return b.String()
}
