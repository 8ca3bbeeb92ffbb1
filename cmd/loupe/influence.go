package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/influence"
	"github.com/loupe-ml/loupe/npy"
	"github.com/loupe-ml/loupe/tensor"
)

const influenceUsage = `loupe influence --train dir --test dir [--method TracInCP|TracInCPFast|SimilarityInfluence] [--k K]
             TracInCP, TracInCPFast: --checkpoint c1.onnx:LR --checkpoint c2.onnx:LR ... [--layers a,b] [--final-fc fc] [--self]
             SimilarityInfluence:    --model m.onnx --layers a,b [--metric cosine|euclidean] [--direction max|min]
             [--batch-size N] [--out dir]
  a data folder holds inputs.npy (or input0.npy, input1.npy, ...) and labels.npy`

// cmdInfluence ranks training examples by their influence on test
// examples (captum.influence).
func cmdInfluence(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("influence", flag.ContinueOnError)
	fs.SetOutput(stderr)
	method := fs.String("method", "TracInCP", "TracInCP, TracInCPFast or SimilarityInfluence")
	var ckFlags multi
	fs.Var(&ckFlags, "checkpoint", "a checkpoint as file.onnx:learning_rate (repeat, in training order)")
	trainDir := fs.String("train", "", "training data folder")
	testDir := fs.String("test", "", "test data folder")
	model := fs.String("model", "", "SimilarityInfluence: the ONNX model")
	layers := fs.String("layers", "", "modules, comma-separated (TracInCP: the weights used, default all; SimilarityInfluence: the layers compared)")
	finalFC := fs.String("final-fc", "", "TracInCPFast: the final fully connected module")
	metric := fs.String("metric", "cosine", "SimilarityInfluence: cosine or euclidean")
	direction := fs.String("direction", "", "SimilarityInfluence: max or min (default: max for cosine, min for euclidean)")
	k := fs.Int("k", 3, "how many proponents and opponents (or most similar examples) to list")
	self := fs.Bool("self", false, "TracInCP, TracInCPFast: also print each training example's self-influence")
	batch := fs.Int("batch-size", 8, "examples per pass where the method batches")
	out := fs.String("out", "", "folder for scores.npy (TracIn) ")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if *trainDir == "" || *testDir == "" {
		return usageError{errors.New("--train and --test are required\n" + influenceUsage)}
	}
	if *k < 1 {
		return usageError{fmt.Errorf("--k %d: want 1 or more", *k)}
	}
	if *batch < 1 || *batch > attr.MaxBatch {
		return usageError{fmt.Errorf("--batch-size %d: want 1 to %d", *batch, attr.MaxBatch)}
	}
	train, err := influence.LoadDataset(*trainDir)
	if err != nil {
		return err
	}
	test, err := influence.LoadDataset(*testDir)
	if err != nil {
		return err
	}
	var mods []string
	if *layers != "" {
		for _, l := range strings.Split(*layers, ",") {
			mods = append(mods, strings.TrimSpace(l))
		}
	}
	if *method == "SimilarityInfluence" {
		m, err := loadModel(*model)
		if err != nil {
			return err
		}
		net, err := attr.NewNet(m)
		if err != nil {
			return err
		}
		if len(mods) == 0 {
			return usageError{errors.New("SimilarityInfluence needs --layers")}
		}
		dir := *direction
		if dir == "" {
			dir = "max"
			if *metric == "euclidean" {
				dir = "min"
			}
		}
		si := &influence.SimilarityInfluence{Net: net, Layers: mods, InfluenceSrcDataset: train, SimilarityMetric: *metric, SimilarityDirection: dir, BatchSize: *batch}
		res, err := si.Influence(ctx, test.Inputs, min(*k, train.Len()), attr.Options{})
		if err != nil {
			return err
		}
		for _, l := range mods {
			fmt.Fprintf(stdout, "layer %s (%s, %s first)\n", l, *metric, dir)
			printTopK(stdout, "most similar", res[l])
		}
		return nil
	}
	if len(ckFlags) == 0 {
		return usageError{errors.New("--checkpoint is required (file.onnx:learning_rate, one per checkpoint)\n" + influenceUsage)}
	}
	var paths []string
	var lrs []float64
	for _, c := range ckFlags {
		i := strings.LastIndex(c, ":")
		if i < 0 {
			return usageError{fmt.Errorf("--checkpoint %q: want file.onnx:learning_rate", c)}
		}
		lr, err := strconv.ParseFloat(c[i+1:], 64)
		if err != nil {
			return usageError{fmt.Errorf("--checkpoint %q: learning rate: %w", c, err)}
		}
		paths = append(paths, c[:i])
		lrs = append(lrs, lr)
	}
	cks, err := influence.LoadCheckpoints(paths, lrs)
	if err != nil {
		return err
	}
	progress := progressBar(stderr, "checkpoints", false)
	var scores *tensor.Tensor
	var selfInf []float64
	switch *method {
	case "TracInCP":
		t := &influence.TracInCP{Checkpoints: cks, TrainDataset: train, Layers: mods, BatchSize: *batch, Progress: progress}
		if scores, err = t.Influence(ctx, test); err == nil && *self {
			selfInf, err = t.SelfInfluence(ctx)
		}
	case "TracInCPFast":
		if *finalFC == "" {
			return usageError{errors.New("TracInCPFast needs --final-fc")}
		}
		t := &influence.TracInCPFast{Checkpoints: cks, TrainDataset: train, FinalFCLayer: *finalFC, BatchSize: *batch, Progress: progress}
		if scores, err = t.Influence(ctx, test); err == nil && *self {
			selfInf, err = t.SelfInfluence(ctx)
		}
	default:
		return usageError{fmt.Errorf("--method %q: want TracInCP, TracInCPFast or SimilarityInfluence", *method)}
	}
	if err != nil {
		return err
	}
	kk := min(*k, train.Len())
	for _, side := range []struct {
		name string
		pro  bool
	}{{"proponents", true}, {"opponents", false}} {
		tk, err := influence.KMostInfluential(scores, kk, side.pro)
		if err != nil {
			return err
		}
		printTopK(stdout, side.name, tk)
	}
	if selfInf != nil {
		fmt.Fprintln(stdout, "self-influence:")
		for j, v := range selfInf {
			fmt.Fprintf(stdout, "  train %d: %.6g\n", j, v)
		}
	}
	if *out != "" {
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return err
		}
		p := filepath.Join(*out, "scores.npy")
		if err := npy.WriteFile(p, scores); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "wrote", p)
	}
	return nil
}

// printTopK prints, per test example, the training examples and scores.
func printTopK(w io.Writer, what string, tk *influence.TopK) {
	for i, idx := range tk.Indices {
		var parts []string
		for j, x := range idx {
			parts = append(parts, fmt.Sprintf("%d (%.4g)", x, tk.Values[i][j]))
		}
		fmt.Fprintf(w, "test %d %s: %s\n", i, what, strings.Join(parts, ", "))
	}
}
