package npy

import (
	"bytes"
	"testing"

	"github.com/loupe-ml/loupe/tensor"
)

func TestRoundTrip(t *testing.T) {
	f, _ := tensor.FromFloat32([]float32{1.5, -2, 3, 4, 5, 6}, 2, 3)
	i, _ := tensor.FromInt64([]int64{7, -8, 9}, 3)
	for _, x := range []*tensor.Tensor{f, i, tensor.Scalar(2.5)} {
		var buf bytes.Buffer
		if err := Write(&buf, x); err != nil {
			t.Fatal(err)
		}
		if (buf.Len()-len(buf.Bytes()[10+int(buf.Bytes()[8]):]))%64 != 0 {
			t.Errorf("header of %v not aligned to 64 bytes", x)
		}
		y, err := Read(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if !tensor.SameShape(x.Shape, y.Shape) || x.String() != y.String() {
			t.Errorf("round trip %v -> %v", x, y)
		}
	}
	if _, err := Read(bytes.NewReader([]byte("not numpy"))); err == nil {
		t.Error("garbage: no error")
	}
}
