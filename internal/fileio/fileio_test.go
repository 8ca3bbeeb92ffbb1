package fileio

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestOpenRegular opens a regular file and refuses, at once, a folder, a
// FIFO without a writer and a device; a missing file keeps its error.
func TestOpenRegular(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.bin")
	if err := os.WriteFile(path, []byte("abc"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, st, err := OpenRegular(path)
	if err != nil || st.Size() != 3 {
		t.Fatalf("regular file: %v %v", st, err)
	}
	f.Close()
	if _, _, err := OpenRegular(filepath.Join(dir, "missing")); !os.IsNotExist(err) {
		t.Errorf("missing file: %v", err)
	}
	bad := []string{dir}
	if _, err := os.Stat("/dev/zero"); err == nil {
		bad = append(bad, "/dev/zero")
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err == nil {
		bad = append(bad, fifo)
	}
	for _, p := range bad {
		errc := make(chan error, 1)
		go func() { _, _, err := OpenRegular(p); errc <- err }()
		select {
		case err := <-errc:
			if err == nil || !strings.Contains(err.Error(), "not a regular file") || !strings.Contains(err.Error(), p) {
				t.Errorf("%s: %v", p, err)
			}
		case <-time.After(time.Minute):
			t.Fatalf("%s: OpenRegular blocked", p)
		}
	}
}
