package preprocess

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/loupe-ml/loupe/npy"
	"github.com/loupe-ml/loupe/tensor"
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

// TestReadInput reads a .npy input as it is and names pictures and
// inputs by their extensions.
func TestReadInput(t *testing.T) {
	for name, want := range map[string][2]bool{"a.PNG": {true, true}, "b.jpeg": {true, true}, "c.npy": {false, true}, "d.txt": {false, false}} {
		if IsImage(name) != want[0] || IsInput(name) != want[1] {
			t.Errorf("%s: image %v input %v, want %v", name, IsImage(name), IsInput(name), want)
		}
	}
	path := filepath.Join(t.TempDir(), "x.npy")
	x := tensor.New(1, 2, 3)
	for i := range x.F {
		x.F[i] = float32(i)
	}
	if err := npy.WriteFile(path, x); err != nil {
		t.Fatal(err)
	}
	got, shown, err := ReadInput(path, Options{})
	if err != nil || shown != nil || !tensor.SameShape(got.Shape, x.Shape) || got.F[5] != 5 {
		t.Fatalf("ReadInput: %v %v %v", got, shown, err)
	}
}
