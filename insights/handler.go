package insights

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/loupe-ml/loupe/internal/explain"
	"github.com/loupe-ml/loupe/internal/httpguard"
	"github.com/loupe-ml/loupe/internal/methods"
	"github.com/loupe-ml/loupe/viz"
)

//go:embed page.html page.js page.css
var pageFS embed.FS

// paramInfo is a method's parameter as the page lists it.
type paramInfo struct {
	Name    string `json:"name"`
	Default string `json:"default"`
	Doc     string `json:"doc"`
}

// methodInfo is a method as the page lists it.
type methodInfo struct {
	Name   string      `json:"name"`
	Doc    string      `json:"doc"`
	Layer  bool        `json:"layer"`
	Params []paramInfo `json:"params"`
}

// inputInfo is an input as the page lists it.
type inputInfo struct {
	Name     string   `json:"name"`
	Modality Modality `json:"modality"`
}

// info is what the page needs to draw its controls: the summary, the
// models, the inputs, the method to start with, the signs and views.
type info struct {
	Summary
	// Detector says the models are detectors: examples show boxes, and
	// requests name one (box=).
	Detector bool        `json:"detector"`
	Inputs   []inputInfo `json:"inputs"`
	Method   string      `json:"method"`
	Signs    []string    `json:"signs"`
	Views    []string    `json:"views"`
}

// Page sizes of /api/examples.
const (
	defaultLimit = 12
	maxLimit     = 100
)

// examplesPage is a page of /api/examples: the rows from offset on, and
// how many pass the filter.
type examplesPage struct {
	Total    int   `json:"total"`
	Offset   int   `json:"offset"`
	Examples []Row `json:"examples"`
}

// Handler returns the app, behind Config's checks: the page at / (its
// script and style at /page.js and /page.css), and under /api/:
//
//   - summary: the counts, the classes that occur, the models, inputs and
//     the method the page starts with (JSON);
//   - examples?class=&correct=right|wrong&model=&offset=&limit=: a page
//     of the examples that pass the filter, with every model's prediction
//     (JSON; limit at most 100);
//   - methods: the methods and their parameters (JSON);
//   - picture?i=&input=: an image input of an example (PNG);
//   - explain?i=&model=&method=&param=name=value&layer=&target=&sign=&view=:
//     one model's attributions on an example, every input in its modality
//     (JSON: see Explanation); target as the command line takes it, the
//     predicted class when absent;
//   - attribution?...&input=: the same for one image input, as a PNG.
//
// With detectors, examples carry each model's boxes, explain and
// attribution take box= (the detection, by its place in the model's
// boxes of the example, best first; 0 when absent), iou=true (the box's
// score times its IoU with the detected box) and no target, and
// the methods include DRISE. A box that is not one of the example's, or
// box= to classifiers, gets 400.
//
// Every route, the page and pictures included, needs the token (401
// without it); a Host that does not name the server and a request from
// another site's page get 403; a URL over a few KB gets 414; every
// response carries a Content-Security-Policy, X-Content-Type-Options:
// nosniff and Referrer-Policy: no-referrer. An attribution's errors in
// the request (an unknown method, a parameter out of its bounds or naming
// a file) get 400, a panic in the method 500, a method over its timeout
// 503. Serve it with NewHTTPServer's timeouts.
func (s *Server) Handler(c Config) (http.Handler, error) {
	mux := http.NewServeMux()
	for name, ctype := range map[string]string{"page.html": "text/html; charset=utf-8", "page.js": "text/javascript; charset=utf-8", "page.css": "text/css; charset=utf-8"} {
		b, err := pageFS.ReadFile(name)
		if err != nil {
			return nil, err
		}
		path := "GET /" + name
		if name == "page.html" {
			path = "GET /{$}"
		}
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", ctype)
			w.Write(b)
		})
	}
	in := info{Summary: s.Summary(), Detector: s.detector, Method: s.method, Signs: []string{"positive", "absolute_value", "negative", "all"}, Views: viz.ImageMethods()}
	for _, x := range s.inputs {
		in.Inputs = append(in.Inputs, inputInfo{x.Name, x.Modality})
	}
	mux.HandleFunc("GET /api/summary", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, in) })
	mux.HandleFunc("GET /api/examples", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		f := Filter{Correct: q.Get("correct")}
		var err error
		for _, p := range []struct {
			name string
			v    *int
			def  int
		}{{"class", &f.Class, -1}, {"model", &f.Model, -1}} {
			if *p.v, err = intParam(q, p.name, p.def); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
		offset, err := intParam(q, "offset", 0)
		if err == nil && offset < 0 {
			err = fmt.Errorf("offset %d: want 0 or more", offset)
		}
		limit, err2 := intParam(q, "limit", defaultLimit)
		if err2 == nil && (limit < 1 || limit > maxLimit) {
			err2 = fmt.Errorf("limit %d: want 1 to %d", limit, maxLimit)
		}
		if err = errors.Join(err, err2); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rows, err := s.Examples(f)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		p := examplesPage{Total: len(rows), Offset: offset, Examples: rows[min(offset, len(rows)):min(offset+limit, len(rows))]}
		writeJSON(w, p)
	})
	var ms []methodInfo
	for _, name := range methods.Names() {
		m, _ := methods.Lookup(name)
		mi := methodInfo{Name: name, Doc: m.Doc, Layer: m.Layer}
		for _, p := range m.Params {
			if methods.IsFile(p) {
				continue // refused over HTTP
			}
			mi.Params = append(mi.Params, paramInfo{p.Name, p.Default, p.Doc})
		}
		ms = append(ms, mi)
	}
	if s.detector {
		mi := methodInfo{Name: DRISE, Doc: "D-RISE (Petsiuk et al. 2021): the black-box method for detectors; random masks weighted by how well the masked image's predictions match the box (one model evaluation per mask)"}
		for _, p := range driseParams {
			mi.Params = append(mi.Params, paramInfo{p.Name, p.Default, p.Doc})
		}
		ms = append(ms, mi)
	}
	mux.HandleFunc("GET /api/methods", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, ms) })
	mux.HandleFunc("GET /api/picture", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		i, err := intParam(q, "i", -1)
		k, err2 := intParam(q, "input", 0)
		if err = errors.Join(err, err2); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		b, err := s.Picture(i, k)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		w.Write(b)
	})
	timeout := c.timeout()
	// attribution runs one attribution request: its context ends when
	// its client leaves, or at the timeout.
	attribution := func(w http.ResponseWriter, r *http.Request, answer func(ctx context.Context, i int, req Request) (ctype string, b []byte, err error)) {
		q := r.URL.Query()
		i, err := intParam(q, "i", -1)
		var req Request
		var err2, err3, err4 error
		req.Model, err2 = intParam(q, "model", 0)
		req.Input, err3 = intParam(q, "input", 0)
		req.Sign, err4 = viz.ParseSign(q.Get("sign"))
		var err5, err6 error
		if req.Box, err5 = intParam(q, "box", 0); err5 == nil && q.Has("box") && !s.detector {
			err5 = errors.New("box: the models are not detectors")
		}
		if v := q.Get("iou"); v != "" {
			if req.IoU, err6 = strconv.ParseBool(v); err6 != nil {
				err6 = fmt.Errorf("iou %s: want true or false", httpguard.QuoteShort(v))
			} else if !s.detector {
				err6 = errors.New("iou: the models are not detectors")
			}
		}
		if err = errors.Join(err, err2, err3, err4, err5, err6); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req.Method, req.Params, req.Layer, req.Target, req.View = q.Get("method"), q["param"], q.Get("layer"), q.Get("target"), q.Get("view")
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		ctype, b, err := answer(ctx, i, req)
		if err != nil {
			msg, code := attributionError(err, timeout)
			http.Error(w, msg, code)
			return
		}
		w.Header().Set("Content-Type", ctype)
		w.Write(b)
	}
	mux.HandleFunc("GET /api/attribution", func(w http.ResponseWriter, r *http.Request) {
		attribution(w, r, func(ctx context.Context, i int, req Request) (string, []byte, error) {
			b, err := s.Attribution(ctx, i, req)
			return "image/png", b, err
		})
	})
	mux.HandleFunc("GET /api/explain", func(w http.ResponseWriter, r *http.Request) {
		attribution(w, r, func(ctx context.Context, i int, req Request) (string, []byte, error) {
			e, err := s.Explain(ctx, i, req)
			if err != nil {
				return "", nil, err
			}
			b, err := json.Marshal(e)
			return "application/json", b, err
		})
	})
	return newGuard(mux, c)
}

// intParam reads an integer query parameter, def when absent.
func intParam(q url.Values, name string, def int) (int, error) {
	v := q.Get(name)
	if v == "" {
		if def < 0 && name == "i" {
			return 0, errors.New("i: want an example number")
		}
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%s %s: want a number", name, httpguard.QuoteShort(v))
	}
	return n, nil
}

// attributionError is an attribution's error as an HTTP answer: its
// message and status.
func attributionError(err error, timeout time.Duration) (string, int) {
	var re *explain.RequestError
	var pe *PanicError
	switch {
	case errors.As(err, &re):
		return err.Error(), http.StatusBadRequest
	case errors.As(err, &pe):
		return pe.Error(), http.StatusInternalServerError
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("the attribution took more than %v: stopped (ask for less work: fewer steps or samples, a coarser feature grid)", timeout), http.StatusServiceUnavailable
	case errors.Is(err, context.Canceled):
		return "the attribution was cancelled", http.StatusServiceUnavailable
	case errors.Is(err, ErrBusy):
		return err.Error(), http.StatusServiceUnavailable
	}
	return err.Error(), http.StatusBadRequest
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}
