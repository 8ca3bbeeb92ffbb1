package metrics

import (
	"testing"

	"github.com/loupe-ml/loupe/tensor"
)

// TestEmptyBatchLocalization: an attribution whose batch is 0 divided by
// zero in maskRows (panic).
func TestEmptyBatchLocalization(t *testing.T) {
	a, mask := tensor.New(0, 4), tensor.New(1, 4)
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Errorf("ShareInMask: panic %v", r)
			}
		}()
		if _, err := ShareInMask(a, mask); err == nil {
			t.Error("ShareInMask on an empty batch: no error")
		}
	}()
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Errorf("PointingGame: panic %v", r)
			}
		}()
		if _, err := PointingGame(a, mask); err == nil {
			t.Error("PointingGame on an empty batch: no error")
		}
		if _, err := PointingGame(tensor.New(2, 4), nil); err == nil {
			t.Error("PointingGame with a nil mask: no error")
		}
	}()
}
