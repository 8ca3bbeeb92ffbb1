package batch

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/internal/demo"
	"github.com/loupe-ml/loupe/preprocess"
	"github.com/loupe-ml/loupe/tensor"
)

// IsImageFile says whether a file name is a PNG or JPEG picture's.
func IsImageFile(name string) bool { return preprocess.IsImage(name) }

// isInputFile says whether a file of a data folder is an example: a
// picture or a .npy array.
func isInputFile(name string) bool { return preprocess.IsInput(name) }

// ReadInput reads an input file as loupe explain does: a picture,
// preprocessed, or else a .npy array (batch first).
func ReadInput(path string, pre preprocess.Options) (*tensor.Tensor, error) {
	x, _, err := preprocess.ReadInput(path, pre)
	return x, err
}

// Stem is the name an input's attributions are written under:
// OUT/<stem>.npy, the file name without its extension.
func Stem(name string) string {
	base := filepath.Base(name)
	return strings.TrimSuffix(base, filepath.Ext(base))
}

// ListInputs returns the names of the examples of a folder (pictures and
// .npy files), in name order. Two files with one stem (x.png, x.npy)
// would write the same OUT/x.npy: an error names them.
func ListInputs(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("--data: %w", err)
	}
	var names []string
	seen := map[string]string{}
	for _, e := range entries {
		if e.IsDir() || !isInputFile(e.Name()) {
			continue
		}
		if other, ok := seen[Stem(e.Name())]; ok {
			return nil, fmt.Errorf("--data %s: %s and %s would both write %s.npy; rename one", dir, other, e.Name(), Stem(e.Name()))
		}
		seen[Stem(e.Name())] = e.Name()
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, fmt.Errorf("--data %s: no .png, .jpg or .npy files", dir)
	}
	return names, nil
}

// LoadModel loads an ONNX file, or the built-in model for "demo".
func LoadModel(path string) (*engine.Model, error) {
	if path == "demo" {
		return demo.Model()
	}
	if path == "" {
		return nil, errors.New("no model: give an .onnx file, or \"demo\" for the built-in model")
	}
	return engine.Load(path)
}

// ModelSHA256 returns the hex SHA-256 of a model file (of the built-in
// model's bytes for "demo").
func ModelSHA256(path string) (string, error) {
	h := sha256.New()
	if path == "demo" {
		h.Write(demo.ModelBytes())
	} else {
		f, err := os.Open(path)
		if err != nil {
			return "", fmt.Errorf("model: %w", err)
		}
		defer f.Close()
		if _, err := io.Copy(h, f); err != nil {
			return "", fmt.Errorf("model %s: %w", path, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
