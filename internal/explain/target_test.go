package explain

import (
	"context"
	"reflect"
	"strings"
	"testing"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in   string
		want Target
		text string  // String()
		each [][]int // per example, for a batch of 2
	}{
		{"", Target{}, "", nil},
		{"  ", Target{}, "", nil},
		{"3", Class(3), "3", [][]int{{3}, {3}}},
		{" 0 ", Class(0), "0", [][]int{{0}, {0}}},
		{"1,4", Target{each: [][]int{{1}, {4}}}, "1,4", [][]int{{1}, {4}}},
		{"1, 4", Target{each: [][]int{{1}, {4}}}, "1,4", [][]int{{1}, {4}}},
		{"(0,2)", Target{all: []int{0, 2}}, "(0,2)", [][]int{{0, 2}, {0, 2}}},
		{"( 0 , 2 )", Target{all: []int{0, 2}}, "(0,2)", [][]int{{0, 2}, {0, 2}}},
		{"(5)", Class(5), "5", [][]int{{5}, {5}}},
		{"(0,2),(1,3)", Target{each: [][]int{{0, 2}, {1, 3}}}, "(0,2),(1,3)", [][]int{{0, 2}, {1, 3}}},
		{"(0,2), (1,3)", Target{each: [][]int{{0, 2}, {1, 3}}}, "(0,2),(1,3)", [][]int{{0, 2}, {1, 3}}},
		{"pred", Predicted(), "pred", nil},
		{"predicted", Predicted(), "pred", nil},
		{"Pred", Predicted(), "pred", nil},
	}
	for _, tc := range tests {
		got, err := ParseTarget(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: %#v, want %#v", tc.in, got, tc.want)
		}
		if got.String() != tc.text {
			t.Errorf("%q: String %q, want %q", tc.in, got.String(), tc.text)
		}
		if back, err := ParseTarget(got.String()); err != nil || !reflect.DeepEqual(back, got) {
			t.Errorf("%q: String %q reads back as %#v (%v)", tc.in, got.String(), back, err)
		}
		if got.IsPredicted() {
			continue // resolving asks the model (TestRunPredicted)
		}
		at, each, err := got.resolve(context.Background(), nil, 2, nil, nil)
		if err != nil || !reflect.DeepEqual(each, tc.each) || at.IsZero() != (tc.each == nil) {
			t.Errorf("%q: resolved to %v, %v (%v), want %v", tc.in, at, each, err, tc.each)
		}
	}
}

func TestParseTargetErrors(t *testing.T) {
	for in, bad := range map[string]string{
		"x":          `"x" is not an index`,
		"1,x":        `"x" is not an index`,
		"1,":         `"" is not an index`,
		"-1":         "index -1 is negative",
		"2.5":        `"2.5"`,
		"(0,2":       `"(0,2" is not an index tuple`,
		"(0,a)":      `"a" is not an index`,
		"()":         `"" is not an index`,
		"(0,2)(1,3)": `"(1,3)" after a tuple`,
		"(0,2),":     `"," after a tuple`,
		"(0,2),1":    `"1" is not an index tuple`,
		"prediction": `"prediction" is not an index`,
		"(0,2),(1,3": `"(1,3" is not an index tuple`,
	} {
		_, err := ParseTarget(in)
		if err == nil {
			t.Errorf("%q: no error", in)
			continue
		}
		if !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "target "+`"`+in+`"`) {
			t.Errorf("%q: error %q, want one naming %s and the whole text", in, err, bad)
		}
	}
}
