package kernels

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestKernelAsmGenerated checks that kernel_amd64.s is what its generator
// in _asm writes, so that neither is edited without the other (run go
// generate after changing _asm).
func TestKernelAsmGenerated(t *testing.T) {
	gotool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool to run the generator:", err)
	}
	want, err := os.ReadFile("kernel_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "kernel_amd64.s")
	cmd := exec.Command(gotool, "run", "./_asm", "-out", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run ./_asm: %v\n%s", err, msg)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(got, want) {
		return
	}
	gotLines, wantLines := bytes.Split(got, []byte("\n")), bytes.Split(want, []byte("\n"))
	for i := 0; ; i++ {
		if i == len(gotLines) || i == len(wantLines) || !bytes.Equal(gotLines[i], wantLines[i]) {
			var g, w []byte
			if i < len(gotLines) {
				g = gotLines[i]
			}
			if i < len(wantLines) {
				w = wantLines[i]
			}
			t.Fatalf("kernel_amd64.s is not what go run ./_asm writes (run go generate ./engine/internal/kernels); first difference at line %d:\nfile:      %q\ngenerator: %q", i+1, w, g)
		}
	}
}
