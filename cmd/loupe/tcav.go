package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/concept"
	"github.com/loupe-ml/loupe/npy"
	"github.com/loupe-ml/loupe/preprocess"
	"github.com/loupe-ml/loupe/tensor"
)

const tcavUsage = `loupe tcav --model m.onnx --input x.npy|image.png --concepts dir --layers a,b --target T
             [--sets "striped,random_0;dotted,random_0"] [--classifier default|meandiff] [--save-cavs dir]
  each subfolder of --concepts is a concept (its name), holding .npy files (one example or a batch each) or pictures;
  without --sets, every concept is tested against each random_* concept and against random_0 for significance`

// cmdTCAV runs TCAV (captum.concept): how much concepts, given as folders
// of examples, drive the model's score for a class at some layers.
func cmdTCAV(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tcav", flag.ContinueOnError)
	fs.SetOutput(stderr)
	model := fs.String("model", "", "ONNX model file (\"demo\": the built-in model)")
	input := fs.String("input", "", "inputs scored (.npy batch or picture)")
	conceptDir := fs.String("concepts", "", "folder of concept folders")
	layersFlag := fs.String("layers", "", "layers, comma-separated (module paths or tensor names)")
	target := fs.Int("target", -1, "the class scored")
	setsFlag := fs.String("sets", "", "experimental sets: concept names separated by commas, sets by semicolons")
	clf := fs.String("classifier", "default", "default (hinge-loss linear classifier, as Captum) or meandiff (difference of class means)")
	saveCAVs := fs.String("save-cavs", "", "folder where CAVs are stored and reused")
	pre := imageFlags(fs)
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if *input == "" || *conceptDir == "" || *layersFlag == "" || *target < 0 {
		return usageError{errors.New("--input, --concepts, --layers and --target are required\n" + tcavUsage)}
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
	x, _, err := readInput(*input, popts)
	if err != nil {
		return fmt.Errorf("input: %w", err)
	}
	concepts, err := loadConcepts(*conceptDir, popts)
	if err != nil {
		return err
	}
	byName := map[string]concept.Concept{}
	var randoms []concept.Concept
	for _, c := range concepts {
		byName[c.Name] = c
		if strings.HasPrefix(c.Name, "random") {
			randoms = append(randoms, c)
		}
	}
	var sets [][]concept.Concept
	type pairing struct {
		c     concept.Concept
		pairs []string // keys of [c, random_i]
	}
	var tests []pairing
	var randomKeys []string // keys of [random_0, random_i]
	if *setsFlag != "" {
		for _, s := range strings.Split(*setsFlag, ";") {
			var set []concept.Concept
			for _, n := range strings.Split(s, ",") {
				c, ok := byName[strings.TrimSpace(n)]
				if !ok {
					return usageError{fmt.Errorf("--sets: no concept %q in %s", strings.TrimSpace(n), *conceptDir)}
				}
				set = append(set, c)
			}
			sets = append(sets, set)
		}
	} else {
		if len(randoms) == 0 {
			return usageError{fmt.Errorf("--concepts %s has no random_* concept to compare with; give --sets", *conceptDir)}
		}
		for _, c := range concepts {
			if strings.HasPrefix(c.Name, "random") {
				continue
			}
			p := pairing{c: c}
			for _, r := range randoms {
				set := []concept.Concept{c, r}
				sets = append(sets, set)
				p.pairs = append(p.pairs, concept.Key(set))
			}
			tests = append(tests, p)
		}
		for _, r := range randoms[1:] {
			set := []concept.Concept{randoms[0], r}
			sets = append(sets, set)
			randomKeys = append(randomKeys, concept.Key(set))
		}
	}
	var layers []string
	for _, l := range strings.Split(*layersFlag, ",") {
		layers = append(layers, strings.TrimSpace(l))
	}
	t := &concept.TCAV{Net: net, Layers: layers, SavePath: *saveCAVs, Progress: progressBar(stderr, "CAVs", false)}
	switch *clf {
	case "default":
	case "meandiff":
		t.Classifier = concept.MeanDifference{}
	default:
		return usageError{fmt.Errorf("--classifier %q: want default or meandiff", *clf)}
	}
	cavs, err := t.ComputeCAVs(ctx, sets, false)
	if err != nil {
		return err
	}
	scores, err := t.Scores(ctx, []*tensor.Tensor{x}, sets, cavs, attr.Class(*target), attr.Options{})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%-24s %-16s %-22s %-10s %-10s %s\n", "set", "layer", "concept", "tcav", "magnitude", "cav acc")
	for _, set := range sets {
		key := concept.Key(set)
		for _, l := range layers {
			s := scores[key][l]
			for i, c := range set {
				fmt.Fprintf(stdout, "%-24s %-16s %-22s %-10.3f %-10.4g %.3f\n", setNames(set), l, c.Name, s.SignCount[i], s.Magnitude[i], cavs[key][l].Accs)
			}
		}
	}
	if len(randomKeys) >= 2 {
		fmt.Fprintln(stdout, "significance (t-test of the concept's tcav scores against random_0's over the random concepts):")
		for _, p := range tests {
			for _, l := range layers {
				var a, b []float64
				for _, k := range p.pairs[1:] {
					a = append(a, scores[k][l].SignCount[0])
				}
				for _, k := range randomKeys {
					b = append(b, scores[k][l].SignCount[0])
				}
				tt, pv, err := concept.Significance(a, b)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "  %-22s %-16s t=%.3f p=%.4g\n", p.c.Name, l, tt, pv)
			}
		}
	}
	return nil
}

func setNames(set []concept.Concept) string {
	var n []string
	for _, c := range set {
		n = append(n, c.Name)
	}
	return strings.Join(n, ",")
}

// loadConcepts reads every subfolder of dir as a concept, ids in name
// order: its .npy files (each one example or a batch) and pictures,
// stacked into one batch.
func loadConcepts(dir string, pre preprocess.Options) ([]concept.Concept, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("concepts: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	if len(names) < 2 {
		return nil, usageError{fmt.Errorf("--concepts %s: want at least 2 concept folders, found %d", dir, len(names))}
	}
	var out []concept.Concept
	for id, name := range names {
		files, err := os.ReadDir(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		var parts []*tensor.Tensor
		for _, f := range files {
			p := filepath.Join(dir, name, f.Name())
			var t *tensor.Tensor
			switch {
			case f.IsDir():
				continue
			case isImageFile(f.Name()):
				t, _, err = preprocess.Load(p, pre)
			case strings.EqualFold(filepath.Ext(f.Name()), ".npy"):
				t, err = npy.ReadFile(p)
			default:
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("concept %s: %w", name, err)
			}
			parts = append(parts, t)
		}
		if len(parts) == 0 {
			return nil, fmt.Errorf("concept %s: no .npy files or pictures in %s", name, filepath.Join(dir, name))
		}
		b, err := stackExamples(parts)
		if err != nil {
			return nil, fmt.Errorf("concept %s: %w", name, err)
		}
		out = append(out, concept.Concept{ID: id, Name: name, Inputs: b})
	}
	return out, nil
}

// stackExamples concatenates batches along dimension 0; a tensor of one
// rank less than the others is one example.
func stackExamples(parts []*tensor.Tensor) (*tensor.Tensor, error) {
	rank := 0
	for _, p := range parts {
		rank = max(rank, p.Rank())
	}
	var item []int
	rows := 0
	for _, p := range parts {
		if p.DType != tensor.Float32 {
			return nil, fmt.Errorf("examples must be float32, got %s", p.DType)
		}
		shape := p.Shape
		if p.Rank() == rank-1 {
			shape = append([]int{1}, shape...)
		}
		if item == nil {
			item = shape[1:]
		} else if !tensor.SameShape(item, shape[1:]) {
			return nil, fmt.Errorf("examples of shapes %v and %v", item, shape[1:])
		}
		rows += shape[0]
	}
	b := tensor.New(append([]int{rows}, item...)...)
	off := 0
	for _, p := range parts {
		copy(b.F[off:], p.F)
		off += p.Len()
	}
	return b, nil
}
