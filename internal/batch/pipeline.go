package batch

import (
	"context"
	"flag"
	"fmt"
	"os"
	"reflect"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
)

// Shard is one element of the pipeline: files one worker explains
// together (several per model call for batchable methods).
type Shard struct {
	Names []string
}

// explainFn is the pipeline's one step: the model loaded once per worker
// (Setup), then each shard explained and written.
type explainFn struct {
	Cfg Config
	w   *Worker
}

func init() {
	register.DoFn2x1[context.Context, Shard, error](&explainFn{})
	beam.RegisterType(reflect.TypeOf((*Shard)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*Config)(nil)).Elem())
}

// Setup loads the model.
func (f *explainFn) Setup() error {
	w, err := NewWorker(f.Cfg)
	if err != nil {
		return err
	}
	f.w = w
	return nil
}

// ProcessElement explains a shard. Failures of single files are in their
// records; only a failure to write the results fails the shard (and
// Beam retries it).
func (f *explainFn) ProcessElement(ctx context.Context, s Shard) error {
	_, err := f.w.Explain(ctx, s.Names)
	return err
}

// shards cuts the file names into shards of per files.
func shards(names []string, per int) []Shard {
	var out []Shard
	for i := 0; i < len(names); i += per {
		out = append(out, Shard{Names: names[i:min(i+per, len(names))]})
	}
	return out
}

// Pipeline builds the Beam pipeline that explains the named files: the
// shards, reshuffled so that a runner spreads them over its workers, and
// explainFn on each.
func Pipeline(cfg Config, names []string) *beam.Pipeline {
	p, s := beam.NewPipelineWithRoot()
	col := beam.CreateList(s, shards(names, cfg.filesPerCall()))
	col = beam.Reshuffle(s, col)
	beam.ParDo0(s.Scope("explain"), &explainFn{Cfg: cfg}, col)
	return p
}

// execute runs a pipeline on a runner by name.
func execute(ctx context.Context, runner string, p *beam.Pipeline) error {
	_, err := beam.Run(ctx, runner, p)
	if err != nil {
		return fmt.Errorf("Apache Beam runner %s: %w", runner, err)
	}
	return nil
}

// pollEvery is how often progress is looked at.
const pollEvery = time.Second

// IsWorker says whether a Beam runner started the process as an SDK
// worker: on a cluster the runner runs the submitting binary itself, as
// "loupe --worker=true --id=... --control_endpoint=...", with no command.
func IsWorker(args []string) bool {
	for _, a := range args[1:] {
		switch a {
		case "--worker", "--worker=true", "-worker", "-worker=true":
			return true
		}
	}
	return false
}

// ServeWorker runs Beam's worker harness with the process's command-line
// flags, for a runner that started the process as a worker (IsWorker).
// It does not return: Beam ends the process when the runner stops it.
func ServeWorker() {
	flag.Parse()
	beam.Init()
	os.Exit(0)
}
