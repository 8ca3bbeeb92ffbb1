package preprocess

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestHostileInput: a FIFO, a directory, and nil readers or images are
// errors, returned at once (opening a FIFO without a writer used to hang).
func TestHostileInput(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe.png")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	for _, path := range []string{fifo, dir} {
		done := make(chan error, 1)
		go func() { _, _, err := Load(path, Options{}); done <- err }()
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("Load(%s): accepted", path)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Load(%s) hangs", path)
		}
	}
	if _, err := Decode(nil); err == nil {
		t.Error("Decode(nil): accepted")
	}
	if _, _, err := Image(nil, Options{}); err == nil {
		t.Error("Image(nil): accepted")
	}
	if _, _, err := Load(filepath.Join(dir, "missing.png"), Options{}); !os.IsNotExist(err) {
		t.Errorf("a missing file: %v", err)
	}
}
