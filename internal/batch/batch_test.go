package batch

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/options/jobopts"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/internal/demo"
	"github.com/loupe-ml/loupe/internal/explain"
	"github.com/loupe-ml/loupe/npy"
	"github.com/loupe-ml/loupe/tensor"
)

// writeShapes writes n demo images as .npy files [1, 3, 48, 48] and
// returns the folder and each file's class.
func writeShapes(t testing.TB, n int) (string, map[string]int) {
	t.Helper()
	dir := t.TempDir()
	labels := map[string]int{}
	for i := 0; i < n; i++ {
		c := i % len(demo.Classes)
		img, _ := demo.Draw(c, uint64(100+i))
		x, err := img.Reshape(1, 3, demo.Size, demo.Size)
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("ex%02d.npy", i)
		if err := npy.WriteFile(filepath.Join(dir, name), x); err != nil {
			t.Fatal(err)
		}
		labels[name] = c
	}
	return dir, labels
}

// alone explains one file as loupe explain does: explain.Run on the
// file's array, the model loaded from scratch.
func alone(t *testing.T, cfg Config, file string) *tensor.Tensor {
	t.Helper()
	m, err := LoadModel(cfg.Model)
	if err != nil {
		t.Fatal(err)
	}
	nt, err := attr.NewNet(m)
	if err != nil {
		t.Fatal(err)
	}
	x, err := npy.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	target, err := explain.ParseTarget(cfg.Target)
	if err != nil {
		t.Fatal(err)
	}
	res, err := explain.Run(context.Background(), nt, []*tensor.Tensor{x}, explain.Request{Method: cfg.Method, Params: cfg.Params, Target: target})
	if err != nil {
		t.Fatal(err)
	}
	return res.Attributions[0]
}

// closeTo says whether a and b differ by at most tol times b's largest
// magnitude.
func closeTo(a, b []float32, tol float64) bool {
	if len(a) != len(b) {
		return false
	}
	scale := 0.0
	for _, v := range b {
		scale = max(scale, math.Abs(float64(v)))
	}
	for i := range a {
		if math.Abs(float64(a[i])-float64(b[i])) > tol*scale {
			return false
		}
	}
	return true
}

// readManifest reads OUT/manifest.jsonl.
func readManifest(t *testing.T, out string) []Record {
	t.Helper()
	f, err := os.Open(filepath.Join(out, "manifest.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []Record
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("manifest line %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

// TestPipelineMatchesExplain runs the pipeline on Beam's local runners
// and checks each file's attributions against explain.Run on that file
// alone: bit for bit file by file (the default), up to float rounding
// with several files a call.
func TestPipelineMatchesExplain(t *testing.T) {
	cases := []struct {
		runner, method string
		params         []string
		batch          int
	}{
		{"direct", "IntegratedGradients", []string{"n_steps=8"}, 0},
		{"direct", "Saliency", nil, 4},
		{"direct", "DeepLift", nil, 0},
		{"prism", "Saliency", nil, 0},
	}
	for _, c := range cases {
		t.Run(c.runner+"/"+c.method, func(t *testing.T) {
			data, _ := writeShapes(t, 6)
			out := t.TempDir()
			cfg := Config{Model: "demo", Data: data, Out: out, Method: c.method, Params: c.params, Target: "pred", Batch: c.batch}
			sum, err := Run(context.Background(), cfg, Options{Runner: c.runner})
			if err != nil {
				t.Fatal(err)
			}
			if sum.Done != 6 || sum.Failed != 0 || sum.Skipped != 0 || sum.Runner != c.runner {
				t.Fatalf("summary %+v: want 6 done on %s", sum, c.runner)
			}
			recs := readManifest(t, out)
			if len(recs) != 6 {
				t.Fatalf("%d manifest lines, want 6", len(recs))
			}
			for _, r := range recs {
				got, err := npy.ReadFile(filepath.Join(out, r.Output))
				if err != nil {
					t.Fatal(err)
				}
				want := alone(t, cfg, filepath.Join(data, r.Input))
				if c.batch > 1 {
					// Several files a call: the same up to float rounding.
					if !slices.Equal(got.Shape, want.Shape) || !closeTo(got.F, want.F, 1e-5) {
						t.Errorf("%s: batch attributions differ from explain's on the file alone by more than rounding", r.Input)
					}
				} else if !slices.Equal(got.Shape, want.Shape) || !slices.Equal(got.F, want.F) {
					t.Errorf("%s: batch attributions differ from explain's on the file alone", r.Input)
				}
				if len(r.Predictions) != 1 || len(r.Targets) != 1 || r.Targets[0][0] != r.Predictions[0].Classes[0] {
					t.Errorf("%s: predictions %v, targets %v: want the predicted class as target", r.Input, r.Predictions, r.Targets)
				}
				if r.ModelSHA256 == "" || r.Params["n_steps"] == "" && c.method == "IntegratedGradients" {
					t.Errorf("%s: model hash %q, params %v", r.Input, r.ModelSHA256, r.Params)
				}
				if hasDelta := c.method == "IntegratedGradients" || c.method == "DeepLift"; hasDelta != (len(r.Delta) == 1) {
					t.Errorf("%s: delta %v", r.Input, r.Delta)
				}
			}
		})
	}
}

// TestRestartAndFailures checks that a bad file is recorded with its
// error without stopping the job, that a second run over the same OUT
// does only what is left, and the summary with labels.
func TestRestartAndFailures(t *testing.T) {
	data, labels := writeShapes(t, 4)
	if err := os.WriteFile(filepath.Join(data, "bad.npy"), []byte("not an array"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	cfg := Config{Model: "demo", Data: data, Out: out, Method: "Saliency", Target: "pred", Metrics: []string{"infidelity", "sensitivity_max"}}
	var last [3]int
	sum, err := Run(context.Background(), cfg, Options{Labels: labels, Progress: func(d, f, n int) { last = [3]int{d, f, n} }})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Done != 4 || sum.Failed != 1 || sum.Failures["bad.npy"] == "" || last != [3]int{5, 1, 5} {
		t.Fatalf("summary %+v, last progress %v: want 4 done, bad.npy failed, progress 5/5 with 1 failure", sum, last)
	}
	if sum.Labeled != 4 || sum.Accuracy != 1 || len(sum.ClassMeans) != 3 {
		t.Errorf("labels: %d labeled, accuracy %g, class means %v: want 4, 1 (the demo model knows its shapes), 3 classes", sum.Labeled, sum.Accuracy, sum.ClassMeans)
	}
	// The mean of class 0 is ex00's attributions and ex03's, averaged.
	a0, _ := npy.ReadFile(filepath.Join(out, "ex00.npy"))
	a3, _ := npy.ReadFile(filepath.Join(out, "ex03.npy"))
	m0, err := npy.ReadFile(sum.ClassMeans[0])
	if err != nil {
		t.Fatal(err)
	}
	for i := range m0.F {
		if d := m0.F[i] - (a0.F[i]+a3.F[i])/2; d > 1e-6 || d < -1e-6 {
			t.Fatalf("class 0 mean [%d] = %g, want %g", i, m0.F[i], (a0.F[i]+a3.F[i])/2)
		}
	}
	recs := readManifest(t, out)
	if len(recs) != 5 || recs[0].Input != "bad.npy" || recs[0].Error == "" || recs[1].Metrics["infidelity"] == nil || recs[1].Metrics["sensitivity_max"] == nil {
		t.Fatalf("manifest %+v: want bad.npy with its error first, then metrics", recs)
	}
	// Run again: only the bad file is tried.
	sum, err = Run(context.Background(), cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Skipped != 4 || sum.Done != 0 || sum.Failed != 1 {
		t.Fatalf("second run %+v: want 4 skipped, the bad file failed again", sum)
	}
	// Another method over the same OUT redoes everything.
	cfg.Method, cfg.Metrics = "InputXGradient", nil
	if sum, err = Run(context.Background(), cfg, Options{}); err != nil || sum.Done != 4 {
		t.Fatalf("other method: %+v, %v: want 4 explained again", sum, err)
	}
	// So does another target.
	cfg.Target = "1"
	if sum, err = Run(context.Background(), cfg, Options{}); err != nil || sum.Done != 4 {
		t.Fatalf("other target: %+v, %v: want 4 explained again", sum, err)
	}
}

// TestBeamFlags checks that loupe batch's runner and Beam's flags reach
// Beam (its options are flags of flag.CommandLine), without running a
// cluster, and are put back after the run.
func TestBeamFlags(t *testing.T) {
	fs := flag.NewFlagSet("batch", flag.ContinueOnError)
	fs.String("model", "", "")
	own, bf := SplitBeamFlags(fs, []string{"--model", "m.onnx", "--endpoint", "localhost:8099", "--job_name=j1", "--async", "--nonsense=1"})
	if !slices.Equal(own, []string{"--model", "m.onnx", "--nonsense=1"}) || !slices.Equal(bf, []string{"endpoint=localhost:8099", "job_name=j1", "async=true"}) {
		t.Fatalf("split: own %q, beam %q", own, bf)
	}
	data, _ := writeShapes(t, 3)
	cfg := Config{Model: "demo", Data: data, Out: t.TempDir(), Method: "Saliency", Target: "pred"}
	var runner, endpoint, job string
	exec := func(ctx context.Context, r string, p *beam.Pipeline) error {
		runner, endpoint, job = r, *jobopts.Endpoint, *jobopts.JobName
		return nil
	}
	if _, err := Run(context.Background(), cfg, Options{Runner: "flink", BeamFlags: bf, Execute: exec}); err != nil {
		t.Fatal(err)
	}
	if runner != "flink" || endpoint != "localhost:8099" || job != "j1" {
		t.Errorf("Beam saw runner %q, endpoint %q, job name %q", runner, endpoint, job)
	}
	if *jobopts.Endpoint != "" || *jobopts.JobName != "" {
		t.Errorf("flags not restored: endpoint %q, job name %q", *jobopts.Endpoint, *jobopts.JobName)
	}
	if _, err := Run(context.Background(), cfg, Options{BeamFlags: []string{"no_such_flag=1"}, Execute: exec}); err == nil {
		t.Error("an unknown Beam flag was accepted")
	}
}

// TestStopRecordsNothing checks that a cancelled worker returns the
// context's error and records no failure for the file it was on, so that
// a new run redoes it.
func TestStopRecordsNothing(t *testing.T) {
	data, _ := writeShapes(t, 2)
	out := t.TempDir()
	cfg := Config{Model: "demo", Data: data, Out: out, Method: "Saliency", Target: "pred"}
	if err := os.MkdirAll(filepath.Join(out, partsDir), 0o755); err != nil {
		t.Fatal(err)
	}
	w, err := NewWorker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := w.Explain(ctx, []string{"ex00.npy", "ex01.npy"}); err != context.Canceled {
		t.Errorf("cancelled Explain: %v, want context.Canceled", err)
	}
	if parts, _ := os.ReadDir(filepath.Join(out, partsDir)); len(parts) != 0 {
		t.Errorf("%d parts written by a cancelled worker", len(parts))
	}
}

// TestIsWorker checks how a process started by a Beam runner as a
// worker is told from a loupe command.
func TestIsWorker(t *testing.T) {
	for _, c := range []struct {
		args []string
		want bool
	}{
		{[]string{"loupe", "--worker=true", "--id=1", "--control_endpoint=localhost:1"}, true},
		{[]string{"loupe", "-worker"}, true},
		{[]string{"loupe", "batch", "--model", "m.onnx"}, false},
		{[]string{"loupe"}, false},
	} {
		if got := IsWorker(c.args); got != c.want {
			t.Errorf("IsWorker(%q) = %v", c.args, got)
		}
	}
}

// TestFlinkPathOnLocalJobService submits the pipeline as loupe batch
// --runner flink --endpoint does, through Beam's portable job API, to a
// job service on this machine (prism's, standing in for a Flink job
// server), with the workers in this process (--environment_type
// LOOPBACK): the cluster path without a cluster.
func TestFlinkPathOnLocalJobService(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a job service")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := prism.CreateJobServer(ctx, prism.Options{Port: port}); err != nil {
		t.Fatal(err)
	}
	data, _ := writeShapes(t, 4)
	out := t.TempDir()
	cfg := Config{Model: "demo", Data: data, Out: out, Method: "Saliency", Target: "pred"}
	flags := []string{fmt.Sprintf("endpoint=127.0.0.1:%d", port), "environment_type=LOOPBACK", "job_name=loupe-flink-path"}
	sum, err := Run(ctx, cfg, Options{Runner: "flink", BeamFlags: flags})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Done != 4 || sum.Failed != 0 || sum.Runner != "flink" {
		t.Fatalf("summary %+v", sum)
	}
	for _, r := range readManifest(t, out) {
		got, err := npy.ReadFile(filepath.Join(out, r.Output))
		if err != nil {
			t.Fatal(err)
		}
		if want := alone(t, cfg, filepath.Join(data, r.Input)); !slices.Equal(got.F, want.F) {
			t.Errorf("%s: attributions differ from explain's", r.Input)
		}
	}
}
