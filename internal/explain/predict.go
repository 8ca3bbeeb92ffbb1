package explain

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/tensor"
)

// Prediction is one class of a prediction: its index, probability and name
// ("" when no names are known).
type Prediction struct {
	Index int
	Prob  float64
	Name  string
}

// Label is the class's index and, when known, its name: "281 tabby".
func (c Prediction) Label() string {
	if c.Name == "" {
		return fmt.Sprint(c.Index)
	}
	return fmt.Sprintf("%d %s", c.Index, c.Name)
}

// maxNameBytes bounds a class names file (ImageNet's is 20 kB).
const maxNameBytes = 16 << 20

// ReadClassNames reads class names, one a line, the line number (from
// 0) being the class index; surrounding spaces are dropped. A line
// "index name" or "index,name" whose indices count up from 0 (as in
// many label files) is read as the name alone.
func ReadClassNames(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("class names: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > maxNameBytes {
		return nil, fmt.Errorf("class names %s: %d bytes, more than the %d a names file may have", path, st.Size(), maxNameBytes)
	}
	var names []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		names = append(names, strings.TrimSpace(sc.Text()))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("class names %s: %w", path, err)
	}
	for len(names) > 0 && names[len(names)-1] == "" {
		names = names[:len(names)-1]
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("class names %s: no names (want one a line)", path)
	}
	numbered := true
	for i, n := range names {
		prefix := fmt.Sprint(i)
		rest, ok := strings.CutPrefix(n, prefix)
		numbered = numbered && ok && (strings.HasPrefix(rest, " ") || strings.HasPrefix(rest, ",") || strings.HasPrefix(rest, "\t"))
	}
	if numbered {
		for i, n := range names {
			names[i] = strings.TrimSpace(strings.TrimLeft(strings.TrimPrefix(n, fmt.Sprint(i)), " ,\t"))
		}
	}
	return names, nil
}

// Predict runs the network once on a batch (inputs, then the values of
// its extra inputs) and returns, for each example, its k most probable
// classes, the most probable first, named from names when given. Scores
// that are already probabilities (non-negative rows summing to 1) are
// kept; others go through a softmax. The model's output must be [N,
// classes]; an error in evaluating it names the batch's shapes.
func Predict(ctx context.Context, nt *attr.Net, inputs, additional []*tensor.Tensor, k int, names []string) ([][]Prediction, error) {
	y, err := nt.Eval(ctx, append(append([]*tensor.Tensor(nil), inputs...), additional...))
	if err != nil {
		return nil, fmt.Errorf("the model on inputs of shape %s: %w", shapesOf(inputs), err)
	}
	return TopK(y, k, names)
}

// TopK returns the k most probable classes of each row of scores [N, C]
// (Predict's answer for an output already computed).
func TopK(y *tensor.Tensor, k int, names []string) ([][]Prediction, error) {
	if y == nil || y.Rank() != 2 || y.Shape[1] == 0 || y.DType != tensor.Float32 {
		var shape []int
		if y != nil {
			shape = y.Shape
		}
		return nil, fmt.Errorf("output of shape %v: want float scores [N, classes]", shape)
	}
	n, c := y.Shape[0], y.Shape[1]
	k = min(max(k, 1), c)
	out := make([][]Prediction, n)
	for r := range out {
		row := y.F[r*c : (r+1)*c]
		p := probabilities(row)
		idx := make([]int, c)
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return p[idx[a]] > p[idx[b]] })
		for _, i := range idx[:k] {
			cl := Prediction{Index: i, Prob: p[i]}
			if i < len(names) {
				cl.Name = names[i]
			}
			out[r] = append(out[r], cl)
		}
	}
	return out, nil
}

// probabilities returns a row of scores as probabilities: as they are
// when they already are (non-negative, summing to 1 within 1e-3), else
// their softmax.
func probabilities(row []float32) []float64 {
	p := make([]float64, len(row))
	sum, nonneg := 0.0, true
	for i, v := range row {
		p[i] = float64(v)
		sum += p[i]
		nonneg = nonneg && v >= 0
	}
	if nonneg && math.Abs(sum-1) < 1e-3 {
		return p
	}
	top := math.Inf(-1)
	for _, v := range p {
		top = math.Max(top, v)
	}
	sum = 0
	for i, v := range p {
		p[i] = math.Exp(v - top)
		sum += p[i]
	}
	for i := range p {
		p[i] /= sum
	}
	return p
}

// shapesOf writes the shapes of a batch's tensors: "[1 3 224 224]".
func shapesOf(ts []*tensor.Tensor) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		if t != nil {
			parts[i] = fmt.Sprint(t.Shape)
		}
	}
	return strings.Join(parts, ", ")
}
