// Package graph holds a model as ONNX describes it: nodes (ops) over named
// tensors, initializers (weights), inputs and outputs, and the attributes of
// each node. It knows nothing of how a model is run; package engine compiles
// a Graph into something that runs, and package onnx reads one from a file.
package graph

import (
	"fmt"

	"github.com/loupe-ml/loupe/tensor"
)

// Graph is a model: ops over named tensors in topological order.
type Graph struct {
	Name         string
	Nodes        []*Node
	Inputs       []ValueInfo // runtime inputs (initializers excluded)
	Outputs      []ValueInfo
	ValueInfo    []ValueInfo // shapes of intermediate tensors, when the file gives them
	Initializers map[string]*tensor.Tensor
	Opsets       map[string]int // opset version per domain ("" is the default ONNX domain)
}

// Opset returns the version of the default ONNX domain the model imports.
func (g *Graph) Opset() int {
	if v, ok := g.Opsets[""]; ok {
		return v
	}
	if v, ok := g.Opsets["ai.onnx"]; ok {
		return v
	}
	return 0
}

// Dim is one dimension of a declared shape: a fixed size, or a symbolic name
// (Value -1) such as "batch".
type Dim struct {
	Value int
	Param string
}

// String returns the size, or the symbolic name.
func (d Dim) String() string {
	if d.Value >= 0 {
		return fmt.Sprint(d.Value)
	}
	if d.Param != "" {
		return d.Param
	}
	return "?"
}

// ValueInfo describes a named tensor: its element type and declared shape.
// Shape is nil when the file declares no shape.
type ValueInfo struct {
	Name  string
	DType tensor.DType
	Shape []Dim
}

// Node is one op of the graph.
type Node struct {
	Name    string
	OpType  string
	Domain  string
	Inputs  []string // "" marks an omitted optional input
	Outputs []string
	Attrs   map[string]*Attr
}

// String names the node for messages: its name and op type.
func (n *Node) String() string {
	if n.Name == "" {
		return fmt.Sprintf("%s node (output %q)", n.OpType, first(n.Outputs))
	}
	return fmt.Sprintf("%s node %q", n.OpType, n.Name)
}

// first returns the first string of s, or "" when there is none.
func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// AttrType is the kind of value an attribute holds.
type AttrType uint8

// Attribute kinds, as in ONNX's AttributeProto.
const (
	AttrUndefined AttrType = iota
	AttrFloat
	AttrInt
	AttrString
	AttrTensor
	AttrGraph
	AttrFloats
	AttrInts
	AttrStrings
)

// Attr is a node attribute. Only the field that matches Type is set.
type Attr struct {
	Name    string
	Type    AttrType
	F       float32
	I       int64
	S       string
	T       *tensor.Tensor
	Floats  []float32
	Ints    []int64
	Strings []string
}

// Int returns the integer attribute name, or def when absent or not an
// integer.
func (n *Node) Int(name string, def int64) int64 {
	if a, ok := n.Attrs[name]; ok && a.Type == AttrInt {
		return a.I
	}
	return def
}

// Float returns the float (or integer) attribute name, or def when absent
// or of another type.
func (n *Node) Float(name string, def float32) float32 {
	if a, ok := n.Attrs[name]; ok {
		switch a.Type {
		case AttrFloat:
			return a.F
		case AttrInt:
			return float32(a.I)
		}
	}
	return def
}

// Str returns the string attribute name, or def when absent or not a
// string.
func (n *Node) Str(name string, def string) string {
	if a, ok := n.Attrs[name]; ok && a.Type == AttrString {
		return a.S
	}
	return def
}

// Ints returns the integer-list attribute name (an integer gives a list of
// one), or def when absent or of another type.
func (n *Node) Ints(name string, def []int64) []int64 {
	if a, ok := n.Attrs[name]; ok {
		switch a.Type {
		case AttrInts:
			return a.Ints
		case AttrInt:
			return []int64{a.I}
		}
	}
	return def
}

// Floats returns the float-list attribute name, or def when absent or of
// another type.
func (n *Node) Floats(name string, def []float32) []float32 {
	if a, ok := n.Attrs[name]; ok && a.Type == AttrFloats {
		return a.Floats
	}
	return def
}

// Tensor returns the tensor attribute name, or nil when absent or not a
// tensor.
func (n *Node) Tensor(name string) *tensor.Tensor {
	if a, ok := n.Attrs[name]; ok && a.Type == AttrTensor {
		return a.T
	}
	return nil
}

// Has reports whether the node carries attribute name.
func (n *Node) Has(name string) bool {
	_, ok := n.Attrs[name]
	return ok
}
