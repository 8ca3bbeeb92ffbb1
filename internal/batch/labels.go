package batch

import (
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/loupe-ml/loupe/npy"
	"github.com/loupe-ml/loupe/tensor"
)

// ReadLabels reads the true classes of the examples from a CSV file of
// file,class lines (the format of loupe insights --labels): the class a
// number, or a name of classes. Lines whose class is neither (a header)
// are skipped only on the first line.
func ReadLabels(path string, classes []string) (map[string]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--labels: %w", err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("--labels %s: %w", path, err)
	}
	out := map[string]int{}
	for line, r := range rows {
		if len(r) != 2 {
			return nil, fmt.Errorf("--labels %s line %d: want file,class", path, line+1)
		}
		name, class := strings.TrimSpace(r[0]), strings.TrimSpace(r[1])
		c, err := strconv.Atoi(class)
		if err != nil {
			c = slices.Index(classes, class)
		}
		if c < 0 {
			if line == 0 {
				continue // a header
			}
			return nil, fmt.Errorf("--labels %s line %d: class %q is neither a number nor a class name", path, line+1, class)
		}
		out[name] = c
	}
	return out, nil
}

// classMeans sums attributions per class.
type classMeans struct {
	sum   map[int]*tensor.Tensor
	count map[int]int
}

func newClassMeans() *classMeans {
	return &classMeans{sum: map[int]*tensor.Tensor{}, count: map[int]int{}}
}

// add adds the rows of an attributions file to a class.
func (m *classMeans) add(class int, file string) error {
	a, err := npy.ReadFile(file)
	if err != nil {
		return fmt.Errorf("mean attribution of class %d: %w", class, err)
	}
	if a.DType != tensor.Float32 || a.Rank() == 0 || a.Shape[0] == 0 {
		return fmt.Errorf("mean attribution of class %d: %s holds %v, not float rows", class, file, a.Shape)
	}
	rows, per := a.Shape[0], a.Len()/a.Shape[0]
	s := m.sum[class]
	if s == nil {
		s = tensor.New(append([]int{1}, a.Shape[1:]...)...)
		m.sum[class] = s
	} else if s.Len() != per {
		return fmt.Errorf("mean attribution of class %d: %s has rows of shape %v, others %v", class, file, a.Shape[1:], s.Shape[1:])
	}
	for r := 0; r < rows; r++ {
		for i, v := range a.F[r*per : (r+1)*per] {
			s.F[i] += v
		}
	}
	m.count[class] += rows
	return nil
}

// write writes each class's mean ([1, ...], as one example's
// attributions) to dir/<class>.npy and returns the files by class.
func (m *classMeans) write(dir string) (map[int]string, error) {
	if len(m.sum) == 0 {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	out := map[int]string{}
	for c, s := range m.sum {
		inv := 1 / float32(m.count[c])
		for i := range s.F {
			s.F[i] *= inv
		}
		file := filepath.Join(dir, strconv.Itoa(c)+".npy")
		if err := npy.WriteFile(file, s); err != nil {
			return nil, err
		}
		out[c] = file
	}
	return out, nil
}
