package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loupe-ml/loupe/internal/testmodels"
)

// syncBuffer is a buffer written by the server's goroutine and read by
// the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestServeCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--model", "toy=" + testmodels.Path("toy.onnx"), "--addr", "127.0.0.1:0", "--token", "tok"}, &stdout, &stderr)
	}()
	go func() {
		// run has no ready hook: wait for the first line.
		for {
			if line, _, ok := strings.Cut(stdout.String(), "\n"); ok {
				urls <- line
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	var u string
	select {
	case u = <-urls:
	case err := <-done:
		t.Fatalf("serve stopped: %v\n%s", err, stderr.String())
	}
	if !strings.HasPrefix(u, "http://127.0.0.1:") {
		t.Fatalf("first line %q", u)
	}
	req, _ := http.NewRequest("POST", u+"/v1/models/toy:predict", strings.NewReader(`{"instances": [[1, 2, 3]]}`))
	req.Header.Set("Authorization", "Bearer tok")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	err = json.NewDecoder(resp.Body).Decode(&v)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || v["predictions"] == nil {
		t.Fatalf("predict: %d %v %v", resp.StatusCode, err, v)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestServeRefusesRemote(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"serve", "--model", "toy=" + testmodels.Path("toy.onnx"), "--addr", "0.0.0.0:0"}, &stdout, &stderr)
	if _, ok := err.(usageError); !ok || !strings.Contains(err.Error(), "--allow-remote") {
		t.Fatalf("non-loopback without --allow-remote: %v", err)
	}
	if err := run(context.Background(), []string{"serve"}, &stdout, &stderr); err == nil {
		t.Fatal("no --model: no error")
	}
}
