package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/npy"
	"github.com/loupe-ml/loupe/robust"
	"github.com/loupe-ml/loupe/tensor"
)

const robustUsage = `loupe robust --model m.onnx --input x.npy|image.png [--attack FGSM|PGD] [--target T[,T...]]
             [--epsilon E] [--radius R --step-size S --steps N --norm Linf|L2] [--loss cross_entropy|neg_log]
             [--targeted] [--lower L --upper U] [--search --arg-min A --arg-max B --arg-step S --mode linear|binary]
             [--out dir]`

// cmdRobust attacks a batch with FGSM or PGD (captum.robust) and reports
// the model's predictions before and after; with --search it finds the
// smallest epsilon (FGSM) or radius (PGD) that changes a prediction
// (MinParamPerturbation).
func cmdRobust(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("robust", flag.ContinueOnError)
	fs.SetOutput(stderr)
	model := fs.String("model", "", "ONNX model file (\"demo\": the built-in model)")
	input := fs.String("input", "", "input batch (.npy) or picture")
	attack := fs.String("attack", "FGSM", "FGSM or PGD")
	targetFlag := fs.String("target", "", "class per example (one for all, or comma-separated); default: the predicted class")
	eps := fs.Float64("epsilon", 0.03, "FGSM step size")
	radius := fs.Float64("radius", 0.03, "PGD: radius of the ball")
	stepSize := fs.Float64("step-size", 0.01, "PGD: size of each sign step")
	steps := fs.Int("steps", 10, "PGD: number of steps")
	norm := fs.String("norm", "Linf", "PGD: Linf or L2")
	lossName := fs.String("loss", "cross_entropy", "cross_entropy (on logits) or neg_log (Captum's default, for probability outputs)")
	targeted := fs.Bool("targeted", false, "move towards the target instead of away from it")
	lower := fs.Float64("lower", math.Inf(-1), "lower bound of the perturbed input")
	upper := fs.Float64("upper", math.Inf(1), "upper bound of the perturbed input")
	search := fs.Bool("search", false, "search the smallest epsilon (FGSM) or radius (PGD) that changes a prediction")
	argMin := fs.Float64("arg-min", 0, "search: smallest value")
	argMax := fs.Float64("arg-max", 1, "search: largest value (excluded)")
	argStep := fs.Float64("arg-step", 0.01, "search: step")
	mode := fs.String("mode", "binary", "search: linear or binary")
	out := fs.String("out", "", "folder for perturbed.npy")
	pre := imageFlags(fs)
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if *input == "" {
		return usageError{errors.New("--input is required\n" + robustUsage)}
	}
	var loss robust.Loss
	switch *lossName {
	case "cross_entropy":
		loss = robust.CrossEntropy
	case "neg_log":
		loss = robust.NegLog
	default:
		return usageError{fmt.Errorf("--loss %q: want cross_entropy or neg_log", *lossName)}
	}
	if *attack != "FGSM" && *attack != "PGD" {
		return usageError{fmt.Errorf("--attack %q: want FGSM or PGD", *attack)}
	}
	if *norm != "Linf" && *norm != "L2" {
		return usageError{fmt.Errorf("--norm %q: want Linf or L2", *norm)}
	}
	popts, err := pre()
	if err != nil {
		return err
	}
	m, err := loadModel(*model)
	if err != nil {
		return err
	}
	net, err := attr.NewNet(m)
	if err != nil {
		return err
	}
	if len(net.Inputs) != 1 {
		return usageError{fmt.Errorf("loupe robust attacks models of one input; this one has %v", net.Inputs)}
	}
	x, _, err := readInput(*input, popts)
	if err != nil {
		return fmt.Errorf("input: %w", err)
	}
	if x.DType != tensor.Float32 {
		return usageError{fmt.Errorf("--input: attacks need float inputs, got %s", x.DType)}
	}
	in := []*tensor.Tensor{x}
	orig, err := net.Eval(ctx, in)
	if err != nil {
		return err
	}
	if orig.Rank() != 2 {
		return fmt.Errorf("loupe robust needs a classifier's output [N, C], got shape %v", orig.Shape)
	}
	target, err := parseClasses(*targetFlag, orig)
	if err != nil {
		return err
	}
	lo, hi := *lower, *upper
	if lo == 0 && hi == 0 {
		return usageError{errors.New("--lower 0 --upper 0 leaves no room")}
	}
	fgsm := &robust.FGSM{Net: net, LossFunc: loss, LowerBound: lo, UpperBound: hi}
	pgd := &robust.PGD{Net: net, LossFunc: loss, LowerBound: lo, UpperBound: hi}
	o := robust.Options{Targeted: *targeted}
	run := func(ctx context.Context, in []*tensor.Tensor, p float64) ([]*tensor.Tensor, error) {
		if *attack == "FGSM" {
			return fgsm.Perturb(ctx, in, p, target, o)
		}
		return pgd.Perturb(ctx, in, p, *stepSize, *steps, target, robust.PGDOptions{Options: o, Norm: *norm})
	}
	var adv []*tensor.Tensor
	if *search {
		arg := "epsilon"
		if *attack == "PGD" {
			arg = "radius"
		}
		mp := &robust.MinParamPerturbation{Model: net, Attack: run, ArgName: arg, ArgMin: *argMin, ArgMax: *argMax, ArgStep: *argStep, Mode: *mode}
		r, err := mp.Evaluate(ctx, in, robust.MinParamOptions{Target: target})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s search (%s) tried %d values\n", arg, *mode, len(r.Evaluated))
		if !r.Found {
			fmt.Fprintf(stdout, "no %s in [%g, %g) changes a prediction\n", arg, *argMin, *argMax)
			return nil
		}
		fmt.Fprintf(stdout, "smallest %s that changes a prediction: %g\n", arg, r.Param)
		adv = r.Perturbed
	} else {
		p := *eps
		if *attack == "PGD" {
			p = *radius
		}
		if adv, err = run(ctx, in, p); err != nil {
			return err
		}
	}
	after, err := net.Eval(ctx, adv)
	if err != nil {
		return err
	}
	printAttack(stdout, orig, after, target, *lossName == "neg_log")
	if *out != "" {
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return err
		}
		p := filepath.Join(*out, "perturbed.npy")
		if err := npy.WriteFile(p, adv[0]); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "wrote", p)
	}
	return nil
}

// parseClasses reads "3" or "1,0,2"; empty gives each example's argmax.
func parseClasses(s string, out *tensor.Tensor) ([]int, error) {
	n, c := out.Shape[0], out.Shape[1]
	if s == "" {
		t := make([]int, n)
		for i := range t {
			t[i] = argmaxRow(out, i)
		}
		return t, nil
	}
	var t []int
	for _, p := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || v < 0 || v >= c {
			return nil, usageError{fmt.Errorf("--target %q: want classes in 0..%d separated by commas", s, c-1)}
		}
		t = append(t, v)
	}
	if len(t) != 1 && len(t) != n {
		return nil, usageError{fmt.Errorf("--target: %d classes for %d examples", len(t), n)}
	}
	return t, nil
}

func argmaxRow(out *tensor.Tensor, i int) int {
	c := out.Shape[1]
	best := 0
	for j := 1; j < c; j++ {
		if out.F[i*c+j] > out.F[i*c+best] {
			best = j
		}
	}
	return best
}

// printAttack prints each example's prediction and target probability
// (the softmax of the outputs, or the outputs themselves when they are
// probabilities) before and after the attack.
func printAttack(w io.Writer, before, after *tensor.Tensor, target []int, probs bool) {
	n := before.Shape[0]
	prob := func(out *tensor.Tensor) *tensor.Tensor {
		if !probs {
			p, _ := robust.TargetProb(out, target)
			return p
		}
		p := tensor.New(n)
		c := out.Shape[1]
		for i := range p.F {
			tg := target[0]
			if len(target) == n {
				tg = target[i]
			}
			p.F[i] = out.F[i*c+tg]
		}
		return p
	}
	tp, ta := prob(before), prob(after)
	changed := 0
	fmt.Fprintf(w, "%-8s %-6s %-10s %-10s %-10s %s\n", "example", "target", "class", "p(target)", "attacked", "p(target)")
	for i := 0; i < n; i++ {
		b, a := argmaxRow(before, i), argmaxRow(after, i)
		if a != b {
			changed++
		}
		tg := target[0]
		if len(target) == n {
			tg = target[i]
		}
		fmt.Fprintf(w, "%-8d %-6d %-10d %-10.4f %-10d %.4f\n", i, tg, b, tp.F[i], a, ta.F[i])
	}
	fmt.Fprintf(w, "%d of %d predictions changed\n", changed, n)
}
