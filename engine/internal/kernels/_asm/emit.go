package main

import (
	"bytes"
	"fmt"
)

// writer accumulates assembly text. Instructions are indented by one tab;
// labels and comments start in column one.
type writer struct {
	buf bytes.Buffer
}

// text writes s as it is.
func (w *writer) text(s string) { w.buf.WriteString(s) }

// blank writes an empty line.
func (w *writer) blank() { w.buf.WriteByte('\n') }

// ins writes one instruction, formatted as by fmt.Sprintf.
func (w *writer) ins(format string, args ...any) {
	w.buf.WriteByte('\t')
	fmt.Fprintf(&w.buf, format, args...)
	w.buf.WriteByte('\n')
}

// label writes an empty line and then the label.
func (w *writer) label(name string) {
	fmt.Fprintf(&w.buf, "\n%s:\n", name)
}

// bytes returns what has been written.
func (w *writer) bytes() []byte { return w.buf.Bytes() }
