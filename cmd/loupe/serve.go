package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	loupeserve "github.com/loupe-ml/loupe/serve"
)

// cmdServe serves models over HTTP (package serve): KServe V1 prediction
// and explanation, the Open Inference Protocol's inference, Prometheus
// metrics. It listens on a loopback address unless --allow-remote, prints
// http://HOST:PORT on its first line, and calls ready, if set, with it.
func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer, ready func(url string)) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var models multi
	fs.Var(&models, "model", "NAME=path.onnx: a model to serve under NAME (repeatable)")
	addr := fs.String("addr", "127.0.0.1:8080", "address to serve on (port 0: a free port)")
	token := fs.String("token", "", "a bearer token every request must show (Authorization: Bearer TOKEN); none by default")
	allowRemote := fs.Bool("allow-remote", false, "allow --addr to be an address other than loopback (anyone who can reach it, and has the token if set, can run the models)")
	deadline := fs.Duration("deadline", 60*time.Second, "a request's deadline when it gives no deadline_ms")
	maxDeadline := fs.Duration("max-deadline", 10*time.Minute, "the longest deadline_ms a request may ask for")
	running := fs.Int("max-running", 0, "requests running models at once (0: the number of cores)")
	queue := fs.Int("max-queue", 0, "requests waiting for a slot beyond which requests get 429 (0: 4 times max-running)")
	body := fs.Int64("max-body", 16<<20, "the largest request body, in bytes")
	examples := fs.Int("max-examples", 64, "the most examples per request")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if len(models) == 0 {
		return usageError{errors.New("serve: give at least one --model NAME=path.onnx")}
	}
	if *deadline <= 0 || *maxDeadline <= 0 || *running < 0 || *queue < 0 || *body <= 0 || *examples <= 0 {
		return usageError{errors.New("serve: --deadline, --max-deadline, --max-body and --max-examples must be positive, --max-running and --max-queue 0 or more")}
	}
	var ms []loupeserve.Model
	for _, spec := range models {
		name, path, ok := strings.Cut(spec, "=")
		if !ok || name == "" || path == "" {
			return usageError{fmt.Errorf("--model %q: want NAME=path.onnx", spec)}
		}
		m, err := loupeserve.LoadModel(name, path)
		if err != nil {
			return fmt.Errorf("--model %s: %w", name, err)
		}
		ms = append(ms, m)
	}
	cfg := loupeserve.Config{Token: *token, MaxRunning: *running, MaxQueue: *queue, MaxBodyBytes: *body,
		MaxExamples: *examples, Deadline: *deadline, MaxDeadline: *maxDeadline}
	s, err := loupeserve.New(cfg, ms...)
	if err != nil {
		return usageError{err}
	}
	ln, err := listen(*addr, *allowRemote, stderr,
		"anyone who reaches it could run the models: pass --allow-remote (and --token) to serve there",
		func(a net.Addr) string {
			who := "anyone who can reach it"
			if *token != "" {
				who += " and has the token"
			}
			return fmt.Sprintf("warning: loupe serve listens on %s, not a loopback address: %s can run the models; the connection is not encrypted", a, who)
		})
	if err != nil {
		return err
	}
	u := "http://" + ln.Addr().String()
	fmt.Fprintln(stdout, u)
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.Name
	}
	fmt.Fprintf(stderr, "loupe serve: %s (POST %s/v1/models/NAME:predict, :explain; /v2/models/NAME/infer; /metrics; Ctrl-C stops)\n", strings.Join(names, ", "), u)
	if ready != nil {
		ready(u)
	}
	return serve(ctx, loupeserve.NewHTTPServer(s, cfg), ln)
}
