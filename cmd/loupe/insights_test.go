package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/insights"
	"github.com/loupe-ml/loupe/internal/demo"
	"github.com/loupe-ml/loupe/internal/testmodels"
	"github.com/loupe-ml/loupe/npy"
	"github.com/loupe-ml/loupe/tensor"
)

// examplesPage is a page of /api/examples.
type examplesPage struct {
	Total    int            `json:"total"`
	Examples []insights.Row `json:"examples"`
}

// loupe insights serves the app on the built-in model and a folder, on
// loopback, behind the token its URL carries.
func TestInsightsCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	urls := make(chan string, 1)
	done := make(chan error, 1)
	var out strings.Builder
	go func() {
		done <- cmdInsights(ctx, []string{"--addr", "127.0.0.1:0", "--quiet"}, &out, io.Discard, func(u string) { urls <- u })
	}()
	var start string
	select {
	case start = <-urls:
	case err := <-done:
		t.Fatal(err)
	}
	u, err := url.Parse(start)
	if err != nil || u.Scheme != "http" || u.Hostname() != "127.0.0.1" || u.Port() == "0" || u.Path != "/" || len(u.Query().Get("token")) != 64 {
		t.Fatalf("URL %q (%v): want http://127.0.0.1:PORT/?token=<64 hex digits>", start, err)
	}
	base := "http://" + u.Host
	// Without the token, nothing.
	for _, path := range []string{"/", "/api/examples", "/api/attribution?i=0&method=Saliency", "/api/picture?i=0"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s without the token: %s", path, resp.Status)
		}
	}
	// The printed URL sets the cookie and leads to the page.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	resp, err := browser.Get(start)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.RawQuery != "" || !strings.Contains(string(page), "loupe Insights") {
		t.Errorf("the printed URL: %s at %s", resp.Status, resp.Request.URL)
	}
	resp, err = browser.Get(base + "/api/examples?correct=right")
	if err != nil {
		t.Fatal(err)
	}
	var preds examplesPage
	if err := json.NewDecoder(resp.Body).Decode(&preds); err != nil || preds.Total < 24 || len(preds.Examples) != 12 {
		t.Errorf("%d right predictions of 27, %d on the first page (%v)", preds.Total, len(preds.Examples), err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest("GET", base+"/api/attribution?i=0&method=Saliency", nil)
	req.Header.Set("Authorization", "Bearer "+u.Query().Get("token"))
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/png" {
		t.Errorf("attribution: %v %v", resp, err)
	}
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("after stopping: %v", err)
	}
	if !strings.Contains(out.String(), "loupe Insights on "+start+" (27 examples, 1 models") {
		t.Errorf("printed %q, want the URL with the token", out.String())
	}

	// A folder of .npy files with labels by class name, and a token given.
	dir := t.TempDir()
	for i := 0; i < 3; i++ {
		img, _ := demo.Draw(i, uint64(40+i))
		npy.WriteFile(filepath.Join(dir, fmt.Sprintf("x%d.npy", i)), img)
	}
	os.WriteFile(filepath.Join(dir, "labels.csv"), []byte("file,class\nx0.npy,square\nx1.npy,1\nx2.npy,square\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "classes.txt"), []byte("square\ndisc\ntriangle\n"), 0o644)
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() {
		done <- cmdInsights(ctx2, []string{"--addr", "127.0.0.1:0", "--quiet", "--token", "s3cret", "--allow-host", "box.lan", "--data", dir, "--labels", filepath.Join(dir, "labels.csv"), "--classes", filepath.Join(dir, "classes.txt")}, io.Discard, io.Discard, func(u string) { urls <- u })
	}()
	select {
	case start = <-urls:
	case err := <-done:
		t.Fatal(err)
	}
	u, _ = url.Parse(start)
	if u.Query().Get("token") != "s3cret" {
		t.Errorf("URL %s, want the token given", start)
	}
	req, _ = http.NewRequest("GET", "http://"+u.Host+"/api/examples?correct=wrong", nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	preds = examplesPage{}
	if err := json.NewDecoder(resp.Body).Decode(&preds); err != nil || preds.Total != 1 || preds.Examples[0].ID != "x2.npy" || preds.Examples[0].LabelName != "square" {
		t.Errorf("wrong predictions %+v (%v), want x2.npy labelled square", preds, err)
	}
	resp.Body.Close()
	// Host names: box.lan allowed, evil.example not.
	for host, code := range map[string]int{"box.lan": 200, "evil.example": 403} {
		req, _ = http.NewRequest("GET", "http://"+u.Host+"/api/summary", nil)
		req.Host = host + ":" + u.Port()
		req.Header.Set("Authorization", "Bearer s3cret")
		if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != code {
			t.Errorf("Host %s: %v %v, want %d", host, resp, err, code)
		} else {
			resp.Body.Close()
		}
	}
	cancel2()
	<-done
	for args, want := range map[string]string{
		"--model " + cnn: "--data (or --input) is required",
		"--model " + cnn + " --data " + dir + " --input x.npy": "not both",
		"--data /nonexistent":              "nonexistent",
		"--data " + dir + " --labels nope": "nope",
		"--addr 0.0.0.0:0":                 "not a loopback address",
		"--addr :0":                        "--allow-remote",
		"--timeout -1s":                    "--timeout",
	} {
		err := cmdInsights(context.Background(), append([]string{"--quiet", "--addr", "127.0.0.1:0"}, strings.Fields(args)...), io.Discard, io.Discard, func(string) { t.Errorf("%s: served", args) })
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one mentioning %q", args, err, want)
		}
	}
}

// startInsights runs loupe insights with args until the test ends and
// returns its URL.
func startInsights(t *testing.T, args ...string) *url.URL {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- cmdInsights(ctx, append([]string{"--addr", "127.0.0.1:0", "--quiet", "--token", "tok"}, args...), io.Discard, io.Discard, func(u string) { urls <- u })
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case u := <-urls:
		p, _ := url.Parse(u)
		return p
	case err := <-done:
		done <- err
		t.Fatal(err)
	}
	return nil
}

// apiGet gets an API path with the token, decoding JSON into v.
func apiGet(t *testing.T, u *url.URL, path string, v any) int {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+u.Host+path, nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil && resp.StatusCode == 200 {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}
	return resp.StatusCode
}

// Two models side by side, and a model of two inputs (an image and
// named features) read from .npy batches, and a text model with --tokens
// and --vocab.
func TestInsightsModelsAndInputs(t *testing.T) {
	dir := t.TempDir()
	u := startInsights(t, "--model", "demo", "--model", "demo")
	var sum struct {
		Models []struct{ Name string } `json:"models"`
		Method string                  `json:"method"`
	}
	if apiGet(t, u, "/api/summary", &sum); len(sum.Models) != 2 || sum.Method != "Saliency" {
		t.Errorf("two demo models: %+v", sum)
	}
	var e insights.Explanation
	if code := apiGet(t, u, "/api/explain?i=1&model=1&method=Saliency", &e); code != 200 || e.Model != sum.Models[1].Name || len(e.Parts) != 1 || e.Parts[0].Modality != insights.Image {
		t.Errorf("model 1's explanation: %d %+v", code, e.Model)
	}

	img, tab := tensor.New(4, 1, 8, 8), tensor.New(4, 5)
	for i := range img.F {
		img.F[i] = float32(i%13) / 13
	}
	for i := range tab.F {
		tab.F[i] = float32(i%7) - 3
	}
	npy.WriteFile(filepath.Join(dir, "img.npy"), img)
	npy.WriteFile(filepath.Join(dir, "tab.npy"), tab)
	os.WriteFile(filepath.Join(dir, "names.txt"), []byte("a\nb\nc\nd\ne\n"), 0o644)
	mm := testmodels.Path("multimodal_s0.onnx")
	u = startInsights(t, "--model", mm, "--input", filepath.Join(dir, "img.npy"), "--input", filepath.Join(dir, "tab.npy"), "--features", filepath.Join(dir, "names.txt"))
	e = insights.Explanation{}
	if code := apiGet(t, u, "/api/explain?i=3&method=Saliency", &e); code != 200 || len(e.Parts) != 2 || e.Parts[1].Modality != insights.Features ||
		len(e.Parts[1].Features) != 5 || e.Parts[1].Features[4].Name != "e" || e.Parts[1].Features[4].Value != float64(tab.F[19]) || e.Model != "multimodal_s0" {
		t.Errorf("multimodal: %d %+v", code, e)
	}

	tok := tensor.NewInt(2, 7)
	for i := range tok.I {
		tok.I[i] = int64(3*i+1) % 50
	}
	npy.WriteFile(filepath.Join(dir, "tok.npy"), tok)
	os.WriteFile(filepath.Join(dir, "tokens.txt"), []byte("the film was a real treat .\nnot good , not bad either .\n"), 0o644)
	u = startInsights(t, "--model", testmodels.Path("text_s0.onnx"), "--input", filepath.Join(dir, "tok.npy"), "--tokens", filepath.Join(dir, "tokens.txt"))
	e = insights.Explanation{}
	if code := apiGet(t, u, "/api/explain?i=1&method=LayerIntegratedGradients&layer=emb&param=n_steps=5", &e); code != 200 || len(e.Parts) != 1 ||
		e.Parts[0].Modality != insights.Text || len(e.Parts[0].Tokens) != 7 || e.Parts[0].Tokens[6].Name != "." || e.Parts[0].Tokens[1].Name != "good" {
		t.Errorf("text: %d %+v", code, e)
	}
	var vocab []string
	for k := 0; k < 50; k++ {
		vocab = append(vocab, fmt.Sprintf("word%d", k))
	}
	os.WriteFile(filepath.Join(dir, "vocab.txt"), []byte(strings.Join(vocab, "\n")+"\n"), 0o644)
	u = startInsights(t, "--model", testmodels.Path("text_s0.onnx"), "--input", filepath.Join(dir, "tok.npy"), "--vocab", filepath.Join(dir, "vocab.txt"))
	e = insights.Explanation{}
	if code := apiGet(t, u, "/api/explain?i=1&method=FeatureAblation", &e); code != 200 || len(e.Parts) != 1 || len(e.Parts[0].Tokens) != 7 ||
		e.Parts[0].Tokens[2].Name != vocab[tok.I[9]] {
		t.Errorf("text with a vocabulary: %d %+v", code, e)
	}
	for args, want := range map[string]string{
		"--input " + filepath.Join(dir, "img.npy"): "2 inputs",
		"--data " + dir: "no subfolders",
		"--input " + filepath.Join(dir, "img.npy") + " --input " + filepath.Join(dir, "tok.npy"): "as many examples",
	} {
		err := cmdInsights(context.Background(), append([]string{"--quiet", "--addr", "127.0.0.1:0", "--model", mm}, strings.Fields(args)...), io.Discard, io.Discard, func(string) { t.Errorf("%s: served", args) })
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one mentioning %q", args, err, want)
		}
	}
	for args, want := range map[string]string{
		"--tokens " + filepath.Join(dir, "names.txt"):   "5 lines for 2 examples",
		"--features " + filepath.Join(dir, "names.txt"): "no features input",
	} {
		err := cmdInsights(context.Background(), append([]string{"--quiet", "--addr", "127.0.0.1:0", "--model", testmodels.Path("text_s0.onnx"), "--input", filepath.Join(dir, "tok.npy")}, strings.Fields(args)...), io.Discard, io.Discard, func(string) { t.Errorf("%s: served", args) })
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one mentioning %q", args, err, want)
		}
	}
}

// The built-in detector, a detector from its files with --detector,
// layers per model, and --data for a model of two inputs.
func TestInsightsDetectorAndLayers(t *testing.T) {
	dir := t.TempDir()
	type summary struct {
		Detector bool                           `json:"detector"`
		Models   []struct{ Name, Layer string } `json:"models"`
		Classes  []struct {
			Name string `json:"name"`
		} `json:"classes"`
	}
	u := startInsights(t, "--model", "demo-detector")
	var sum summary
	if apiGet(t, u, "/api/summary", &sum); !sum.Detector || len(sum.Models) != 1 || sum.Models[0].Layer != demo.DetectionLayer || len(sum.Classes) == 0 {
		t.Errorf("demo-detector: %+v", sum)
	}
	var page examplesPage
	if apiGet(t, u, "/api/examples?limit=100", &page); page.Total != 24 {
		t.Fatalf("demo-detector: %d examples, want 24", page.Total)
	}
	two := -1
	for _, r := range page.Examples {
		if len(r.Predictions[0].Boxes) >= 2 {
			two = r.Index
			break
		}
	}
	if two < 0 {
		t.Fatal("no scene with two boxes")
	}
	var e insights.Explanation
	if code := apiGet(t, u, fmt.Sprintf("/api/explain?i=%d&box=1&method=HiResCAM", two), &e); code != 200 || e.Box == nil || e.Box.Index != 1 || len(e.Parts) != 1 || e.Parts[0].Image == "" {
		t.Errorf("HiResCAM of box 1: %d %+v", code, e.Box)
	}
	if code := apiGet(t, u, fmt.Sprintf("/api/explain?i=%d&box=%d&method=HiResCAM", two, len(page.Examples[two].Predictions[0].Boxes)), nil); code != 400 {
		t.Errorf("a box past the last: %d, want 400", code)
	}

	// The same detector from files, on a folder of .npy scenes.
	model, cfg, data := filepath.Join(dir, "det.onnx"), filepath.Join(dir, "det.json"), filepath.Join(dir, "scenes")
	os.WriteFile(model, demo.DetectorBytes(), 0o644)
	os.WriteFile(cfg, demo.DetectorConfigJSON(), 0o644)
	os.Mkdir(data, 0o755)
	for k := 0; k < 3; k++ {
		img, _ := demo.Scene(uint64(9000 + k))
		npy.WriteFile(filepath.Join(data, fmt.Sprintf("s%d.npy", k)), img)
	}
	u = startInsights(t, "--model", model, "--detector", cfg, "--data", data, "--layer", demo.DetectionLayer, "--score", "0.5")
	sum = summary{}
	if apiGet(t, u, "/api/summary", &sum); !sum.Detector || sum.Models[0].Name != "det" || sum.Models[0].Layer != demo.DetectionLayer {
		t.Errorf("detector from files: %+v", sum)
	}
	page = examplesPage{}
	apiGet(t, u, "/api/examples", &page)
	if page.Total != 3 || page.Examples[0].ID != "s0.npy" || len(page.Examples[0].Predictions[0].Boxes) == 0 {
		t.Errorf("detector from files: %+v", page)
	}
	for _, r := range page.Examples {
		for _, b := range r.Predictions[0].Boxes {
			if b.Score < 0.5 {
				t.Errorf("%s: box of score %g under --score 0.5", r.ID, b.Score)
			}
		}
	}
	e = insights.Explanation{}
	if code := apiGet(t, u, "/api/explain?i=0&box=0&method=GradCAM", &e); code != 200 || e.Box == nil || len(e.Parts) != 1 {
		t.Errorf("GradCAM from files: %d %+v", code, e)
	}

	// One layer per model, in order.
	u = startInsights(t, "--model", "demo", "--model", "demo", "--layer", "conv3", "--layer", "conv2")
	sum = summary{}
	if apiGet(t, u, "/api/summary", &sum); len(sum.Models) != 2 || sum.Models[0].Layer != "conv3" || sum.Models[1].Layer != "conv2" {
		t.Errorf("layers per model: %+v", sum)
	}
	// The same picture as with the layer in the request: conv3 for model
	// 0, conv2 for model 1 (and conv3 differs).
	picture := func(mi int, layer string) string {
		t.Helper()
		e := insights.Explanation{}
		q := fmt.Sprintf("/api/explain?i=0&model=%d&method=LayerGradCam", mi)
		if layer != "" {
			q += "&layer=" + layer
		}
		if code := apiGet(t, u, q, &e); code != 200 || len(e.Parts) != 1 || e.Parts[0].Image == "" {
			t.Fatalf("%s: %d, %d parts", q, code, len(e.Parts))
		}
		return e.Parts[0].Image
	}
	if picture(0, "") != picture(0, "conv3") || picture(1, "") != picture(1, "conv2") || picture(1, "") == picture(1, "conv3") {
		t.Error("LayerGradCam without a layer does not use the model's --layer")
	}

	// --data for a model of two inputs: one subfolder per example, files
	// named by input name or number.
	mm := testmodels.Path("multimodal_s0.onnx")
	m, err := loadModel(mm)
	if err != nil {
		t.Fatal(err)
	}
	nt, err := attr.NewNet(m)
	if err != nil {
		t.Fatal(err)
	}
	names := nt.Inputs
	ex := filepath.Join(dir, "mm")
	img, tab := tensor.New(1, 1, 8, 8), tensor.New(5)
	for i := range img.F {
		img.F[i] = float32(i%5) / 5
	}
	for i := range tab.F {
		tab.F[i] = float32(i) - 2
	}
	os.MkdirAll(filepath.Join(ex, "a"), 0o755)
	os.MkdirAll(filepath.Join(ex, "b"), 0o755)
	npy.WriteFile(filepath.Join(ex, "a", "0.npy"), img)
	npy.WriteFile(filepath.Join(ex, "a", "1.npy"), tab)
	npy.WriteFile(filepath.Join(ex, "b", fileSafe(names[0])+".npy"), img)
	npy.WriteFile(filepath.Join(ex, "b", fileSafe(names[1])+".npy"), tab)
	u = startInsights(t, "--model", mm, "--data", ex)
	page = examplesPage{}
	if apiGet(t, u, "/api/examples", &page); page.Total != 2 || page.Examples[1].ID != "b" {
		t.Errorf("two-input --data: %+v", page)
	}
	e = insights.Explanation{}
	if code := apiGet(t, u, "/api/explain?i=1&method=Saliency", &e); code != 200 || len(e.Parts) != 2 || e.Parts[1].Modality != insights.Features || e.Parts[1].Features[4].Value != 2 {
		t.Errorf("two-input --data explained: %d %+v", code, e)
	}

	for args, want := range map[string]string{
		"--model demo --model demo --layer a --layer b --layer c": "3 --layer for 2 --model",
		"--model demo-detector --model demo":                      "detectors",
		"--model demo-detector --score 1.5":                       "--score",
		"--model " + mm + " --data " + dir:                        "no file for input",
	} {
		err := cmdInsights(context.Background(), append([]string{"--quiet", "--addr", "127.0.0.1:0"}, strings.Fields(args)...), io.Discard, io.Discard, func(string) { t.Errorf("%s: served", args) })
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one mentioning %q", args, err, want)
		}
	}
}
