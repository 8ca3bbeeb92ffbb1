package serve_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/loupe-ml/loupe/internal/testmodels"
	"github.com/loupe-ml/loupe/serve"
)

// A service mounts the server under its own mux and explains a request.
func Example() {
	m, err := serve.LoadModel("toy", testmodels.Path("toy.onnx"))
	if err != nil {
		panic(err)
	}
	s, err := serve.New(serve.Config{MaxRunning: 2}, m)
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", s)
	mux.Handle("/metrics", s)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	resp, err := http.Post(srv.URL+"/v1/models/toy:explain", "application/json", strings.NewReader(
		`{"instances": [[1, 2, 3]], "method": "IntegratedGradients", "target": 0, "params": {"n_steps": 20}}`))
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, strings.Contains(string(b), `"attributions":[`))
	// Output: 200 true
}
