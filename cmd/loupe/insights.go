package main

import (
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/insights"
	"github.com/loupe-ml/loupe/internal/demo"
	"github.com/loupe-ml/loupe/npy"
	"github.com/loupe-ml/loupe/preprocess"
	"github.com/loupe-ml/loupe/tensor"
)

// cmdInsights serves loupe Insights on a data set: a folder of images or
// .npy files (models of one input) or of one subfolder per example
// (models of several inputs), .npy batches (--input, one per model
// input), or, for the built-in models, generated shapes or scenes; for
// one model or several side by side (--model repeated), classifiers or
// object detectors (--detector, or --model demo-detector). It serves on a loopback address
// unless --allow-remote, behind a token (random, or --token) that the
// printed URL carries; ready, if set, is called with that URL once the
// server listens.
func cmdInsights(ctx context.Context, args []string, stdout, stderr io.Writer, ready func(url string)) error {
	fs := flag.NewFlagSet("insights", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var models, inputs, layers multi
	fs.Var(&models, "model", "ONNX model file (\"demo\": the built-in model; \"demo-detector\": the built-in detector); repeat to compare models side by side (they must take the same inputs)")
	fs.Var(&layers, "layer", "layer of the layer methods (CAMs, Layer...) when the page names none: once for every model, or once per --model in their order (\"\": the method's default)")
	detectorFile := fs.String("detector", "", "the models are object detectors decoded by this configuration (JSON: see docs/detection.md); the page shows their boxes and explains the one selected")
	scoreTh := fs.Float64("score", 0.25, "detectors: score threshold before non-maximum suppression")
	iouTh := fs.Float64("nms-iou", 0.45, "detectors: IoU above which non-maximum suppression drops the weaker box")
	data := fs.String("data", "", "folder of examples: .png/.jpg images or .npy arrays, one per example; for models of several inputs, one subfolder per example holding <input name>.npy (or 0.npy, 1.npy, ... in input order) (default for the demo models: generated shapes or scenes)")
	fs.Var(&inputs, "input", "a .npy array holding one input of every example, batch first; repeat once per model input, in order (instead of --data); examples are named by row number")
	labels := fs.String("labels", "", "CSV file of example,class lines giving the true classes (class by number or name)")
	classFile := fs.String("classes", "", "text file naming the model's classes, one per line")
	tokens := fs.String("tokens", "", "text inputs: a file of the examples' tokens, one example a line, tokens separated by spaces (the first text input)")
	vocab := fs.String("vocab", "", "text inputs: a file naming the tokens by number, one token a line (for examples without --tokens)")
	features := fs.String("features", "", "features inputs: a file naming the values of the first features input, one name a line")
	addr := fs.String("addr", "127.0.0.1:8080", "address to serve on (port 0: a free port)")
	token := fs.String("token", "", "the token clients must show (default: a random one, printed in the URL)")
	allowRemote := fs.Bool("allow-remote", false, "allow --addr to be an address other than loopback (anyone who can reach it and has the token can read the data set)")
	allowHosts := fs.String("allow-host", "", "more host names (comma-separated) that requests may use to reach the server, beside localhost and its IP address (for --allow-remote)")
	timeout := fs.Duration("timeout", insights.DefaultTimeout, "the longest an attribution may take")
	quiet := fs.Bool("quiet", false, "no progress bar")
	imageOptions := imageFlags(fs)
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	pre, err := imageOptions()
	if err != nil {
		return err
	}
	if *timeout <= 0 {
		return usageError{fmt.Errorf("--timeout %v: want a positive duration", *timeout)}
	}
	if len(models) == 0 {
		models = multi{"demo"}
	}
	if len(layers) > 1 && len(layers) != len(models) {
		return usageError{fmt.Errorf("%d --layer for %d --model: give one for every model, or one per model in their order", len(layers), len(models))}
	}
	if !(*scoreTh > 0 && *scoreTh < 1) || !(*iouTh > 0 && *iouTh <= 1) {
		return usageError{fmt.Errorf("--score and --nms-iou must lie in (0, 1)")}
	}
	var ms []insights.Model
	names := modelNames(models)
	var detClasses []string
	for i, path := range models {
		im := insights.Model{Name: names[i]}
		switch {
		case path == "demo-detector" || *detectorFile != "":
			d, err := loadDetector(path, *detectorFile)
			if err != nil {
				return err
			}
			d.ScoreThreshold, d.IoUThreshold = *scoreTh, *iouTh
			if path == "demo-detector" {
				im.Layer = demo.DetectionLayer // the last convolution is the head
			} else if len(d.Config.Levels) > 0 {
				// Joined levels: the last convolution is one level's head,
				// where the other levels' boxes have no gradient.
				if im.Layer, err = d.CAMLayer(); err != nil {
					return fmt.Errorf("%s: %w", path, err)
				}
			}
			im.Detector, im.Net = d, d.Net
			if detClasses == nil {
				detClasses = d.Config.Classes
			}
		default:
			m, err := loadModel(path)
			if err != nil {
				return err
			}
			if im.Net, err = attr.NewNet(m); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
		}
		switch {
		case len(layers) == 1:
			im.Layer = layers[0]
		case len(layers) > 1:
			im.Layer = layers[i]
		}
		ms = append(ms, im)
	}
	nt := ms[0].Net
	classes, exs, err := insightsData(models[0], *data, inputs, *classFile, *labels, pre, nt.Inputs)
	if err != nil {
		return err
	}
	if classes == nil {
		classes = detClasses
	}
	o := insights.Options{Classes: classes, Progress: progressBar(stderr, "predicting", *quiet)}
	if o.Inputs, err = describeInputs(exs, *tokens, *vocab, *features); err != nil {
		return err
	}
	cfg := insights.Config{Token: *token, Timeout: *timeout}
	for _, h := range strings.Split(*allowHosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			cfg.Hosts = append(cfg.Hosts, h)
		}
	}
	if cfg.Token == "" {
		if cfg.Token, err = insights.NewToken(); err != nil {
			return err
		}
	}
	srv, err := insights.NewModels(ctx, ms, exs, o)
	if err != nil {
		return err
	}
	ln, err := listen(*addr, *allowRemote, stderr,
		"anyone who reaches it could use Insights: pass --allow-remote to serve there",
		func(a net.Addr) string {
			return fmt.Sprintf("warning: loupe Insights serves on %s, not a loopback address: anyone who can reach it and has the token can read the data set and run attributions; the connection is not encrypted", a)
		})
	if err != nil {
		return err
	}
	cfg.Addr = ln.Addr().String()
	h, err := srv.Handler(cfg)
	if err != nil {
		ln.Close()
		return err
	}
	u := (&url.URL{Scheme: "http", Host: cfg.Addr, Path: "/", RawQuery: url.Values{"token": {cfg.Token}}.Encode()}).String()
	kind := "models"
	if ms[0].Detector != nil {
		kind = "detectors"
	}
	fmt.Fprintf(stdout, "loupe Insights on %s (%d examples, %d %s; Ctrl-C stops)\n", u, len(exs), len(ms), kind)
	if ready != nil {
		ready(u)
	}
	return serve(ctx, insights.NewHTTPServer(h, cfg), ln)
}

// modelNames names the models on the page: each by its file's name
// without the extension, numbered when two share a name.
func modelNames(paths []string) []string {
	names := make([]string, len(paths))
	count := map[string]int{}
	for i, p := range paths {
		names[i] = strings.TrimSuffix(filepath.Base(p), filepath.Ext(p))
		count[names[i]]++
	}
	seen := map[string]int{}
	for i, n := range names {
		if count[n] > 1 {
			seen[n]++
			names[i] = fmt.Sprintf("%s (%d)", n, seen[n])
		}
	}
	return names
}

// insightsData reads the class names, the examples (a folder, .npy
// batches, or for the built-in model generated shapes) and their labels.
func insightsData(model, data string, inputs []string, classFile, labels string, pre preprocess.Options, inputNames []string) ([]string, []insights.Example, error) {
	nin := len(inputNames)
	var classes []string
	if classFile != "" {
		b, err := os.ReadFile(classFile)
		if err != nil {
			return nil, nil, fmt.Errorf("--classes: %w", err)
		}
		classes = strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	}
	var exs []insights.Example
	var err error
	switch {
	case data != "" && len(inputs) > 0:
		return nil, nil, usageError{errors.New("give --data or --input, not both")}
	case data != "" && nin > 1:
		if exs, err = loadExampleDirs(data, inputNames); err != nil {
			return nil, nil, err
		}
	case data != "":
		if exs, err = loadExamples(data, pre); err != nil {
			return nil, nil, err
		}
	case len(inputs) > 0:
		if len(inputs) != nin {
			return nil, nil, usageError{fmt.Errorf("%d --input for a model of %d inputs: give one per input, in order", len(inputs), nin)}
		}
		if exs, err = loadBatches(inputs); err != nil {
			return nil, nil, err
		}
	case model == "demo":
		classes = demo.Classes
		exs = demoExamples()
	case model == "demo-detector":
		exs = demoScenes()
	default:
		return nil, nil, usageError{errors.New("--data (or --input) is required for a model other than the built-in one")}
	}
	if labels != "" {
		if err := readLabels(labels, classes, exs); err != nil {
			return nil, nil, err
		}
	}
	return classes, exs, nil
}

// loadBatches reads one .npy batch per input and cuts them into examples
// named by row number.
func loadBatches(files []string) ([]insights.Example, error) {
	var n int
	xs := make([]*tensor.Tensor, len(files))
	for k, f := range files {
		x, err := npy.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--input %s: %w", f, err)
		}
		if x.Rank() == 0 || x.Shape[0] == 0 || (k > 0 && x.Shape[0] != n) {
			return nil, usageError{fmt.Errorf("--input %s: shape %v; want a batch first, of as many examples as the first --input (%d)", f, x.Shape, n)}
		}
		n, xs[k] = x.Shape[0], x
	}
	exs := make([]insights.Example, n)
	for i := range exs {
		exs[i] = insights.Example{ID: strconv.Itoa(i), Label: -1, Inputs: make([]*tensor.Tensor, len(xs))}
		for k, x := range xs {
			exs[i].Inputs[k] = row(x, i)
		}
	}
	return exs, nil
}

// row returns row i of a batch x as a batch of one.
func row(x *tensor.Tensor, i int) *tensor.Tensor {
	shape := append([]int{1}, x.Shape[1:]...)
	out := tensor.Zeros(x.DType, shape)
	n := out.Len()
	switch x.DType {
	case tensor.Float32:
		copy(out.F, x.F[i*n:(i+1)*n])
	case tensor.Int64:
		copy(out.I, x.I[i*n:(i+1)*n])
	default:
		copy(out.B, x.B[i*n:(i+1)*n])
	}
	return out
}

// describeInputs describes the inputs from the examples' first and the
// --tokens, --vocab and --features files: tokens are set on each example
// (the first text input), the vocabulary on every text input, the names
// on the first features input.
func describeInputs(exs []insights.Example, tokensFile, vocabFile, featuresFile string) ([]insights.Input, error) {
	first := exs[0].Inputs
	ins := make([]insights.Input, len(first))
	text, feats := -1, -1
	for k, x := range first {
		ins[k].Modality = insights.GuessModality(x)
		switch {
		case ins[k].Modality == insights.Text && text < 0:
			text = k
		case ins[k].Modality == insights.Features && feats < 0:
			feats = k
		}
	}
	lines := func(flag, file string) ([]string, error) {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", flag, err)
		}
		return strings.Split(strings.TrimRight(string(b), "\n"), "\n"), nil
	}
	if tokensFile != "" {
		if text < 0 {
			return nil, usageError{errors.New("--tokens: the model has no text input (int64 token numbers)")}
		}
		ls, err := lines("--tokens", tokensFile)
		if err != nil {
			return nil, err
		}
		if len(ls) != len(exs) {
			return nil, usageError{fmt.Errorf("--tokens %s: %d lines for %d examples; want one line of tokens per example", tokensFile, len(ls), len(exs))}
		}
		for i, l := range ls {
			toks := strings.Fields(l)
			if n := exs[i].Inputs[text].Len(); len(toks) != n {
				return nil, usageError{fmt.Errorf("--tokens %s line %d: %d tokens for an input of %d", tokensFile, i+1, len(toks), n)}
			}
			exs[i].Tokens = make([][]string, len(first))
			exs[i].Tokens[text] = toks
		}
	}
	if vocabFile != "" {
		if text < 0 {
			return nil, usageError{errors.New("--vocab: the model has no text input (int64 token numbers)")}
		}
		v, err := lines("--vocab", vocabFile)
		if err != nil {
			return nil, err
		}
		for k := range ins {
			if ins[k].Modality == insights.Text {
				ins[k].Vocabulary = v
			}
		}
	}
	if featuresFile != "" {
		if feats < 0 {
			return nil, usageError{errors.New("--features: the model has no features input")}
		}
		names, err := lines("--features", featuresFile)
		if err != nil {
			return nil, err
		}
		if n := first[feats].Len(); len(names) != n {
			return nil, usageError{fmt.Errorf("--features %s: %d names for an input of %d values", featuresFile, len(names), n)}
		}
		ins[feats].Features = names
	}
	return ins, nil
}

// listen listens on addr, which must be a loopback address unless
// allowRemote (then it warns with the warning it is given for the bound
// address). what says who could use the server, for the refusal. A name
// other than localhost is refused before listening unless every address it
// resolves to is loopback.
func listen(addr string, allowRemote bool, stderr io.Writer, what string, warning func(net.Addr) string) (net.Listener, error) {
	refuse := usageError{fmt.Errorf("--addr %s: not a loopback address; %s", addr, what)}
	if !allowRemote && !loopback(addr) {
		return nil, refuse
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if ta, ok := ln.Addr().(*net.TCPAddr); !ok || !ta.IP.IsLoopback() {
		if !allowRemote {
			ln.Close()
			return nil, refuse
		}
		fmt.Fprintln(stderr, warning(ln.Addr()))
	}
	return ln, nil
}

// loopback says whether host:port names only loopback addresses.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if host == "localhost" {
		return true
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return false
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return false
		}
	}
	return true
}

// serve serves on ln until ctx is done.
func serve(ctx context.Context, hs *http.Server, ln net.Listener) error {
	hs.BaseContext = func(net.Listener) context.Context { return ctx } // stopping stops the attributions
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		hs.Shutdown(shut)
	}()
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// demoExamples draws shapes for the built-in model: eight of each class,
// and three whose noise is as bright as the shape, which the model may
// get wrong.
func demoExamples() []insights.Example {
	var exs []insights.Example
	for k := 0; k < 8; k++ {
		for c := range demo.Classes {
			img, _ := demo.Draw(c, uint64(1000+10*k+c))
			x, _ := img.Reshape(1, 3, demo.Size, demo.Size)
			exs = append(exs, insights.Example{ID: fmt.Sprintf("%s-%d", demo.Classes[c], k), Inputs: []*tensor.Tensor{x}, Label: c})
		}
	}
	for c := range demo.Classes {
		img, mask := demo.Draw(c, uint64(2000+c))
		for i := range img.F {
			if !mask[i%(demo.Size*demo.Size)] && i%7 < 3 {
				img.F[i] = 0.95 // bright noise
			}
		}
		x, _ := img.Reshape(1, 3, demo.Size, demo.Size)
		exs = append(exs, insights.Example{ID: fmt.Sprintf("%s-noisy", demo.Classes[c]), Inputs: []*tensor.Tensor{x}, Label: c})
	}
	return exs
}

// demoScenes draws 24 scenes of one to three shapes for the built-in
// detector (seeds 9000 on; the detector was trained on others).
func demoScenes() []insights.Example {
	var exs []insights.Example
	for k := 0; k < 24; k++ {
		img, _ := demo.Scene(uint64(9000 + k))
		x, _ := img.Reshape(1, 3, demo.SceneSize, demo.SceneSize)
		exs = append(exs, insights.Example{ID: fmt.Sprintf("scene-%d", k), Inputs: []*tensor.Tensor{x}, Label: -1})
	}
	return exs
}

// loadExampleDirs reads examples of a model of several inputs: every
// subfolder of dir, in name order, is an example holding one .npy file
// per input, named after the input (characters other than letters,
// digits, '.', '-' and '_' replaced by '_') or by its number (0.npy,
// 1.npy, ...). Arrays without a batch dimension of 1 get one.
func loadExampleDirs(dir string, inputNames []string) ([]insights.Example, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("--data: %w", err)
	}
	var exs []insights.Example
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		ex := insights.Example{ID: e.Name(), Label: -1}
		for k, name := range inputNames {
			var x *tensor.Tensor
			var tried []string
			for _, f := range []string{fileSafe(name) + ".npy", strconv.Itoa(k) + ".npy"} {
				path := filepath.Join(dir, e.Name(), f)
				tried = append(tried, f)
				if _, err := os.Stat(path); err != nil {
					continue
				}
				if x, err = npy.ReadFile(path); err != nil {
					return nil, fmt.Errorf("--data %s: %w", path, err)
				}
				break
			}
			if x == nil {
				return nil, usageError{fmt.Errorf("--data %s: no file for input %s (want %s)", filepath.Join(dir, e.Name()), name, strings.Join(tried, " or "))}
			}
			if x.Rank() == 0 || x.Shape[0] != 1 {
				x, _ = x.Reshape(append([]int{1}, x.Shape...)...)
			}
			ex.Inputs = append(ex.Inputs, x)
		}
		exs = append(exs, ex)
	}
	if len(exs) == 0 {
		return nil, usageError{fmt.Errorf("--data %s: no subfolders; a model of %d inputs (%s) takes one subfolder per example, holding one .npy per input", dir, len(inputNames), strings.Join(inputNames, ", "))}
	}
	return exs, nil
}

// fileSafe turns an input's name into a file name: characters other than
// letters, digits, '.', '-' and '_' become '_'.
func fileSafe(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return '_'
	}, name)
}

// loadExamples reads every .png, .jpg, .jpeg and .npy file of a folder, in
// name order; arrays without a batch dimension of 1 get one.
func loadExamples(dir string, pre preprocess.Options) ([]insights.Example, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("--data: %w", err)
	}
	var names []string
	for _, e := range entries {
		if preprocess.IsInput(e.Name()) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, fmt.Errorf("--data %s: no .png, .jpg or .npy files", dir)
	}
	var exs []insights.Example
	for _, n := range names {
		path := filepath.Join(dir, n)
		x, shown, err := readInput(path, pre)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if x.Rank() == 0 || x.Shape[0] != 1 {
			x, _ = x.Reshape(append([]int{1}, x.Shape...)...)
		}
		exs = append(exs, insights.Example{ID: n, Label: -1, Inputs: []*tensor.Tensor{x}, Image: shown})
	}
	return exs, nil
}

// readLabels sets the true classes from a CSV file of file,class lines.
func readLabels(path string, classes []string, exs []insights.Example) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("--labels: %w", err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return fmt.Errorf("--labels %s: %w", path, err)
	}
	byID := map[string]int{}
	for i, ex := range exs {
		byID[ex.ID] = i
	}
	for line, r := range rows {
		if len(r) != 2 {
			return fmt.Errorf("--labels %s line %d: want file,class", path, line+1)
		}
		i, ok := byID[strings.TrimSpace(r[0])]
		if !ok {
			continue // a header or a file not in the data set
		}
		c, err := strconv.Atoi(strings.TrimSpace(r[1]))
		if err != nil {
			c = -1
			for k, name := range classes {
				if name == strings.TrimSpace(r[1]) {
					c = k
				}
			}
			if c < 0 {
				return fmt.Errorf("--labels %s line %d: class %q is neither a number nor a class name", path, line+1, r[1])
			}
		}
		exs[i].Label = c
	}
	return nil
}
