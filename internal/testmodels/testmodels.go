// Package testmodels finds the ONNX models that loupe's tests share: the
// oracle's small models kept in the repository, the engine's exported test
// models, and the oracle's resnet18, which is kept out of the repository.
// Tests reach them through this package rather than by relative paths, so a
// test file can move without breaking its model paths.
package testmodels

import (
	"os"
	"path/filepath"
	"runtime"
)

// root is the repository's root folder, found from this file's location.
func root() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "."
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Dir is the folder of the oracle's models kept in the repository.
func Dir() string {
	return filepath.Join(root(), "internal", "conformance", "testdata", "oracle", "models")
}

// Path returns the path of one of the oracle's models by file name, for
// example "toy.onnx" or "cnn_s0.onnx".
func Path(name string) string { return filepath.Join(Dir(), name) }

// Engine returns the path of a file in the engine's test data (models exported
// from PyTorch with their expected outputs), for example "lstm_gru.onnx".
func Engine(name string) string {
	return filepath.Join(root(), "engine", "testdata", name)
}

// ResNet18 returns the path of the oracle's resnet18 (45 MB, kept out of the
// repository): $LOUPE_RESNET18, or shared/oracle/models/resnet18_s0.onnx in a
// folder above the repository. It returns "" when neither exists.
func ResNet18() string {
	if p := os.Getenv("LOUPE_RESNET18"); p != "" {
		return p
	}
	dir := root()
	for i := 0; i < 6; i++ {
		p := filepath.Join(dir, "shared", "oracle", "models", "resnet18_s0.onnx")
		if _, err := os.Stat(p); err == nil {
			return p
		}
		dir = filepath.Dir(dir)
	}
	return ""
}
