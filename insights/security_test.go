package insights

// Tests written as an attacker would: a page on another site, a
// DNS-rebinding page, a client without the token, parameters meant to
// read files or exhaust the server.

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/internal/explain"
	"github.com/loupe-ml/loupe/npy"
	"github.com/loupe-ml/loupe/tensor"
)

// routes are every route of the app, and one that is none.
var routes = []string{"/", "/page.js", "/page.css", "/api/examples", "/api/summary", "/api/methods",
	"/api/picture?i=0", "/api/attribution?i=0&method=Saliency", "/api/explain?i=0&method=Saliency", "/nowhere"}

// do sends a request to the handler from the server's own address,
// changed by edit, and checks the headers every response must carry.
func do(t *testing.T, h http.Handler, target string, edit func(*http.Request)) *http.Response {
	t.Helper()
	req := httptest.NewRequest("GET", target, nil)
	req.Host = testAddr
	if edit != nil {
		edit(req)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	resp := rec.Result()
	checkHeaders(t, target, resp)
	return resp
}

func bearer(token string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
}

// checkHeaders checks the headers on every response.
func checkHeaders(t *testing.T, what string, resp *http.Response) {
	t.Helper()
	for name, want := range map[string]string{
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"Content-Security-Policy": "default-src 'self'; img-src 'self' data:;",
		"X-Frame-Options":         "DENY",
	} {
		if got := resp.Header.Get(name); !strings.HasPrefix(got, want) {
			t.Errorf("%s (%s): %s %q, want %q", what, resp.Status, name, got, want)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("%s: CSP %q", what, csp)
	}
}

func body(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return string(b)
}

func TestNoTokenNoAccess(t *testing.T) {
	s := testServer(t)
	s.run = func(context.Context, *attr.Net, []*tensor.Tensor, explain.Request) (*explain.Result, error) {
		t.Error("an attribution ran without the token")
		return nil, errors.New("no")
	}
	h := handler(t, s)
	for _, route := range routes {
		for what, edit := range map[string]func(*http.Request){
			"no token":        nil,
			"wrong token":     bearer("test-token-0123456788"),
			"a prefix":        bearer(testToken[:len(testToken)-1]),
			"empty bearer":    bearer(""),
			"basic auth":      func(r *http.Request) { r.SetBasicAuth("user", testToken) },
			"wrong cookie":    func(r *http.Request) { r.AddCookie(&http.Cookie{Name: handlerCookie(t, h), Value: "guess"}) },
			"other cookie":    func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "loupe_insights", Value: testToken}) },
			"wrong in query":  func(r *http.Request) { r.URL.RawQuery += "&token=guess" },
			"empty in query":  func(r *http.Request) { r.URL.RawQuery += "&token=" },
			"token as header": func(r *http.Request) { r.Header.Set("Token", testToken) },
		} {
			resp := do(t, h, route, edit)
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body(resp), "unauthorized") {
				t.Errorf("%s with %s: %s, want 401", route, what, resp.Status)
			}
		}
	}
	if _, err := s.Handler(Config{}); err == nil {
		t.Error("a handler without a token")
	}
}

// handlerCookie is the name of the cookie the handler sets.
func handlerCookie(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/?token="+testToken, nil)
	req.Host = testAddr
	h.ServeHTTP(rec, req)
	cs := rec.Result().Cookies()
	if len(cs) != 1 {
		t.Fatalf("%d cookies set", len(cs))
	}
	return cs[0].Name
}

// The token in the URL (as printed) sets an HttpOnly, SameSite=Strict
// cookie and redirects to the URL without it; the cookie and a Bearer
// header then work, on a real loopback listener.
func TestTokenOnLoopback(t *testing.T) {
	s := testServer(t)
	token, err := NewToken()
	if err != nil || len(token) != 64 {
		t.Fatalf("token %q, %v", token, err)
	}
	if other, _ := NewToken(); other == token {
		t.Fatal("two tokens alike")
	}
	h, err := s.Handler(Config{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(h)
	defer web.Close()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(web.URL + "/?class=1&token=" + token)
	if err != nil {
		t.Fatal(err)
	}
	body(resp)
	checkHeaders(t, "redirect", resp)
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != web.URL+"/?class=1" {
		t.Errorf("with the token: %s to %q, want 302 to %s/?class=1", resp.Status, loc, web.URL)
	}
	cs := resp.Cookies()
	if len(cs) != 1 || cs[0].Value != token || !cs[0].HttpOnly || cs[0].SameSite != http.SameSiteStrictMode || cs[0].Path != "/" {
		t.Fatalf("cookies %+v: want one, HttpOnly, SameSite=Strict", cs)
	}
	// No open redirect: a path of two slashes stays on the server.
	resp, err = noRedirect.Get(web.URL + "//evil.example/?token=" + token)
	if err != nil {
		t.Fatal(err)
	}
	body(resp)
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, web.URL+"/") {
		t.Errorf("redirect to %q", loc)
	}
	// A browser: the printed URL, then the page's requests with the cookie.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	resp, err = browser.Get(web.URL + "/?token=" + token)
	if err != nil {
		t.Fatal(err)
	}
	if page := body(resp); resp.StatusCode != 200 || resp.Request.URL.String() != web.URL+"/" || !strings.Contains(page, `<script src="page.js">`) || strings.Contains(page, token) {
		t.Errorf("page: %s at %s", resp.Status, resp.Request.URL)
	}
	for _, route := range routes[:len(routes)-1] {
		resp, err := browser.Get(web.URL + route)
		if err != nil {
			t.Fatal(err)
		}
		body(resp)
		checkHeaders(t, route, resp)
		if resp.StatusCode != 200 {
			t.Errorf("%s with the cookie: %s", route, resp.Status)
		}
	}
	req, _ := http.NewRequest("GET", web.URL+"/api/summary", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("Bearer: %v %v", resp, err)
	} else {
		body(resp)
	}
	// DNS rebinding: evil.example resolves to 127.0.0.1; its page's
	// requests carry its name, and the victim's cookie is not sent to it;
	// even with the token, refused.
	req, _ = http.NewRequest("GET", web.URL+"/api/examples", nil)
	req.Host = "evil.example:" + strings.Split(web.Listener.Addr().String(), ":")[1]
	req.Header.Set("Authorization", "Bearer "+token)
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("rebound Host: %v %v", resp, err)
	} else {
		checkHeaders(t, "rebound", resp)
		body(resp)
	}
	// A query of a megabyte is refused before any handler.
	resp, err = http.Get(web.URL + "/api/examples?x=" + strings.Repeat("a", 1<<20))
	if err == nil {
		body(resp)
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Errorf("a query of 1 MB: %s", resp.Status)
		}
	}
}

// A Host that is not the server's (DNS rebinding) and requests from
// another site's page get 403, token or not.
func TestHostAndOrigin(t *testing.T) {
	s := testServer(t)
	h := handler(t, s)
	auth := bearer(testToken)
	for what, tc := range map[string]struct {
		edit func(*http.Request)
		code int
	}{
		"Host evil.com":             {func(r *http.Request) { r.Host = "evil.com:8080" }, 403},
		"Host evil.com, no port":    {func(r *http.Request) { r.Host = "evil.com" }, 403},
		"Host of another port":      {func(r *http.Request) { r.Host = "127.0.0.1:9999" }, 403},
		"Host localhost.evil.com":   {func(r *http.Request) { r.Host = "localhost.evil.com:8080" }, 403},
		"Host 127.0.0.2":            {func(r *http.Request) { r.Host = "127.0.0.2:8080" }, 403},
		"Host 0.0.0.0":              {func(r *http.Request) { r.Host = "0.0.0.0:8080" }, 403},
		"Host empty":                {func(r *http.Request) { r.Host = "" }, 403},
		"Origin evil.com":           {func(r *http.Request) { r.Header.Set("Origin", "http://evil.com") }, 403},
		"Origin null":               {func(r *http.Request) { r.Header.Set("Origin", "null") }, 403},
		"Origin of another port":    {func(r *http.Request) { r.Header.Set("Origin", "http://127.0.0.1:9999") }, 403},
		"Origin https":              {func(r *http.Request) { r.Header.Set("Origin", "https://127.0.0.1:8080") }, 403},
		"Sec-Fetch-Site cross-site": {func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "cross-site") }, 403},
		"Sec-Fetch-Site same-site":  {func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "same-site") }, 403},
		"Sec-Fetch-Site unknown":    {func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "whatever") }, 403},
		"Host localhost":            {func(r *http.Request) { r.Host = "localhost:8080" }, 200},
		"Host LOCALHOST":            {func(r *http.Request) { r.Host = "LOCALHOST:8080" }, 200},
		"Host [::1]":                {func(r *http.Request) { r.Host = "[::1]:8080" }, 200},
		"Origin its own":            {func(r *http.Request) { r.Header.Set("Origin", "http://127.0.0.1:8080") }, 200},
		"Sec-Fetch-Site same-origin": {func(r *http.Request) {
			r.Header.Set("Sec-Fetch-Site", "same-origin")
		}, 200},
		"Sec-Fetch-Site none": {func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "none") }, 200},
	} {
		for _, route := range []string{"/", "/api/attribution?i=0&method=Saliency"} {
			resp := do(t, h, route, func(r *http.Request) { auth(r); tc.edit(r) })
			if msg := body(resp); resp.StatusCode != tc.code {
				t.Errorf("%s on %s: %s %q, want %d", what, route, resp.Status, msg, tc.code)
			}
		}
	}
	// An <img> on another site's page: cross-site, and without the
	// token (the cookie is SameSite=Strict).
	resp := do(t, h, "/api/attribution?i=0&method=IntegratedGradients&param=n_steps=1000", func(r *http.Request) {
		r.Header.Set("Sec-Fetch-Site", "cross-site")
		r.Header.Set("Sec-Fetch-Dest", "image")
	})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("an image on another site: %s", resp.Status)
	}
	// More host names can be allowed.
	h2, _ := s.Handler(Config{Token: testToken, Addr: testAddr, Hosts: []string{"box.lan"}})
	if resp := do(t, h2, "/api/summary", func(r *http.Request) { auth(r); r.Host = "box.lan:8080" }); resp.StatusCode != 200 {
		t.Errorf("an allowed host: %s", resp.Status)
	}
}

// Parameters that name files, or numbers out of their bounds, get 400 at
// once: no attribution runs, no file is opened.
func TestParametersRefused(t *testing.T) {
	s := testServer(t)
	ran := 0
	s.run = func(context.Context, *attr.Net, []*tensor.Tensor, explain.Request) (*explain.Result, error) {
		ran++
		return nil, errors.New("ran")
	}
	h := handler(t, s)
	// A real mask file: if it were read the request would go further.
	mask := filepath.Join(t.TempDir(), "mask.npy")
	if err := npy.WriteFile(mask, tensor.NewInt(1, 1, 32, 32)); err != nil {
		t.Fatal(err)
	}
	for query, want := range map[string]string{
		"method=FeatureAblation&param=feature_mask=/etc/passwd":                "feature_mask names files",
		"method=Lime&param=feature_mask=/dev/zero":                             "feature_mask names files",
		"method=KernelShap&param=feature_mask=" + url.QueryEscape(mask):        "feature_mask names files",
		"method=FeatureAblation&param=feature_mask=" + url.QueryEscape(mask):   "feature_mask names files",
		"method=IntegratedGradients&param=n_steps=1000000000":                  "n_steps=1e+09: want 1 to 1000",
		"method=IntegratedGradients&param=n_steps=1e9":                         "n_steps=1e+09: want 1 to 1000",
		"method=GradientShap&param=n_samples=-3":                               "n_samples=-3: want 1 to 1000",
		"method=Lime&param=n_samples=1000000000":                               "n_samples",
		"method=GradientShap&param=stdevs=NaN":                                 "stdevs",
		"method=NoiseTunnel&param=nt_samples=1000000":                          "nt_samples",
		"method=FeatureAblation&param=perturbations_per_eval=-1":               "perturbations_per_eval",
		"method=Occlusion&param=sliding_window_shapes=3,0,0":                   "sliding_window_shapes",
		"method=IntegratedGradients&param=internal_batch_size=99999999":        "internal_batch_size",
		"method=IntegratedGradients&param=n_steps=8&param=n_steps=-1":          "n_steps=-1",
		"method=Saliency&param=n_steps=3":                                      "has no parameter",
		"method=Saliency&target=" + strings.Repeat("(", 10):                    "target",
		"method=LayerGradCam&param=relu_attributions=true&layer=" + mask + "x": "ran",
	} {
		for _, route := range []string{"/api/attribution", "/api/explain"} {
			before := ran
			resp := do(t, h, route+"?i=0&"+query, bearer(testToken))
			msg := body(resp)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(msg, want) {
				t.Errorf("%s %s: %s %q, want 400 mentioning %q", route, query, resp.Status, msg, want)
			}
			if want != "ran" && ran != before {
				t.Errorf("%s %s: the attribution ran", route, query)
			}
		}
	}
	// The page is not offered file parameters.
	if resp := do(t, h, "/api/methods", bearer(testToken)); strings.Contains(body(resp), "feature_mask") {
		t.Error("/api/methods offers feature_mask")
	}
	// Over the library API too.
	_, err := s.Attribution(context.Background(), 0, Request{Method: "Lime", Params: []string{"feature_mask=" + mask}})
	var re *explain.RequestError
	if !errors.As(err, &re) {
		t.Errorf("Attribution with a file: %v", err)
	}
}

// A panicking method answers 500 and gives its slot back: afterwards more
// requests than slots, at once, all succeed.
func TestPanicReleasesSlot(t *testing.T) {
	s := testServer(t)
	h := handler(t, s)
	slots := cap(s.sem)
	s.run = func(context.Context, *attr.Net, []*tensor.Tensor, explain.Request) (*explain.Result, error) {
		var m map[string]int
		m["boom"]++ // a nil map: panics
		return nil, nil
	}
	for k := 0; k < 2*slots+1; k++ {
		route := []string{"/api/attribution", "/api/explain"}[k%2]
		resp := do(t, h, route+"?i=0&method=Saliency", bearer(testToken))
		if msg := body(resp); resp.StatusCode != http.StatusInternalServerError || !strings.Contains(msg, "internal error") {
			t.Fatalf("%s, panicking method: %s %q", route, resp.Status, msg)
		}
	}
	if len(s.sem) != 0 {
		t.Fatalf("%d slots held after the panics", len(s.sem))
	}
	// A method whose answer makes the drawing panic (a map whose values
	// do not fill its shape): 500 too, slot given back.
	s.run = func(context.Context, *attr.Net, []*tensor.Tensor, explain.Request) (*explain.Result, error) {
		return &explain.Result{Attributions: []*tensor.Tensor{{DType: tensor.Float32, Shape: []int{1, 3, 48, 48}, F: make([]float32, 5)}}}, nil
	}
	for k := 0; k < 2*slots+1; k++ {
		route := []string{"/api/attribution", "/api/explain"}[k%2]
		resp := do(t, h, route+"?i=1&method=Saliency&sign=all", bearer(testToken))
		if msg := body(resp); resp.StatusCode != http.StatusInternalServerError || !strings.Contains(msg, "internal error") {
			t.Fatalf("%s, a drawing that panics: %s %q", route, resp.Status, msg)
		}
	}
	if len(s.sem) != 0 {
		t.Fatalf("%d slots held after the drawing panics", len(s.sem))
	}
	s.results = newCache(maxResults, maxResultBytes) // forget the broken answers
	s.run = explain.Run
	var wg sync.WaitGroup
	for k := 0; k < 2*slots+2; k++ {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			resp := do(t, h, "/api/attribution?method=Saliency&i="+string(rune('0'+k%6))+"&sign="+[]string{"positive", "all"}[k/6%2], bearer(testToken))
			if msg := body(resp); resp.StatusCode != 200 {
				t.Errorf("request %d after the panics: %s %q", k, resp.Status, msg)
			}
		}(k)
	}
	wg.Wait()
	// A failing method gives its slot back too.
	s.run = func(context.Context, *attr.Net, []*tensor.Tensor, explain.Request) (*explain.Result, error) {
		return nil, errors.New("failed")
	}
	for k := 0; k < 2*slots+1; k++ {
		if resp := do(t, h, "/api/attribution?i=1&method=InputXGradient", bearer(testToken)); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("failing method: %s", resp.Status)
		}
	}
	if len(s.sem) != 0 {
		t.Fatalf("%d slots held after the failures", len(s.sem))
	}
}

// An attribution stops when its client leaves: a real, long method
// (NoiseTunnel over IntegratedGradients, 500 × 50 passes) observes the
// cancellation, on a real loopback listener.
func TestClientGoneStopsWork(t *testing.T) {
	s := testServer(t)
	started := make(chan struct{}, 1)
	stopped := make(chan error, 1)
	s.run = func(ctx context.Context, nt *attr.Net, in []*tensor.Tensor, r explain.Request) (*explain.Result, error) {
		started <- struct{}{}
		res, err := explain.Run(ctx, nt, in, r)
		stopped <- err
		return res, err
	}
	h, err := s.Handler(Config{Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(h)
	defer web.Close()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", web.URL+"/api/attribution?i=0&method=NoiseTunnel&param=inner=IntegratedGradients&param=nt_samples=500", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("the request ended before its attribution started: %v", err)
	}
	cancel()
	select {
	case err := <-stopped:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the attribution ended with %v, want context.Canceled", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the attribution goes on after its client left")
	}
	<-done
	waitSlots(t, s)
}

// waitSlots fails unless every attribution slot of s is free within 5 s:
// a handler gives its slot back when the attribution returns, which may
// be just after the client has seen its request end.
func waitSlots(t *testing.T, s *Server) {
	t.Helper()
	for wait := time.Now().Add(5 * time.Second); len(s.sem) != 0 && time.Now().Before(wait); {
		time.Sleep(time.Millisecond)
	}
	if len(s.sem) != 0 {
		t.Errorf("%d slots held", len(s.sem))
	}
}

// An attribution over its deadline stops with 503.
func TestDeadline(t *testing.T) {
	s := testServer(t)
	s.run = func(ctx context.Context, _ *attr.Net, _ []*tensor.Tensor, _ explain.Request) (*explain.Result, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	h, err := s.Handler(Config{Token: testToken, Addr: testAddr, Timeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	resp := do(t, h, "/api/attribution?i=0&method=Saliency", bearer(testToken))
	if msg := body(resp); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(msg, "took more than 20ms") {
		t.Errorf("over the deadline: %s %q", resp.Status, msg)
	}
	waitSlots(t, s)
	if hs := NewHTTPServer(h, Config{Timeout: time.Minute}); hs.ReadHeaderTimeout == 0 || hs.ReadTimeout == 0 || hs.WriteTimeout <= time.Minute || hs.IdleTimeout == 0 || hs.MaxHeaderBytes == 0 || hs.MaxHeaderBytes > 64<<10 {
		t.Errorf("server timeouts %+v", hs)
	}
}

// Long URLs get 414; cache keys are hashes of a fixed size, whatever the
// request.
func TestURLAndCacheBounds(t *testing.T) {
	s := testServer(t)
	h := handler(t, s)
	for _, u := range []string{
		"/api/attribution?i=0&method=Saliency&layer=" + strings.Repeat("x", 5000),
		"/api/examples?" + strings.Repeat("a=b&", 2000),
		"/" + strings.Repeat("p", 2000),
	} {
		if resp := do(t, h, u, bearer(testToken)); resp.StatusCode != http.StatusRequestURITooLong {
			t.Errorf("a URL of %d bytes: %s", len(u), resp.Status)
		}
	}
	long := "/api/attribution?i=0&method=IntegratedGradients&param=n_steps=4&target=" + strings.Repeat("0", 3000)
	resp := do(t, h, long, bearer(testToken))
	body(resp)
	if resp.StatusCode != 200 {
		t.Fatalf("a long target: %s", resp.Status)
	}
	for k := range s.answers.vals {
		if len(k) != 64 {
			t.Errorf("a cache key of %d bytes", len(k))
		}
	}
	// The order of a request's parameters does not matter; which value
	// of a repeated one wins does.
	if c, _, b := get(t, h, "/api/attribution?i=0&method=IntegratedGradients&param=n_steps=4&param=n_steps=6"); c != 200 {
		t.Fatalf("%d %s", c, b)
	}
	n := s.answers.len()
	if c, _, b := get(t, h, "/api/attribution?i=0&method=IntegratedGradients&param=n_steps=6&param=n_steps=4"); c != 200 {
		t.Fatalf("%d %s", c, b)
	}
	if s.answers.len() == n {
		t.Error("n_steps=4 then 6 and n_steps=6 then 4 share a figure")
	}
	get(t, h, "/api/attribution?i=0&method=IntegratedGradients&param=method=riemann_left&param=n_steps=5")
	n = s.answers.len()
	get(t, h, "/api/attribution?i=0&method=IntegratedGradients&param=n_steps=5&param=method=riemann_left")
	if s.answers.len() != n {
		t.Error("the same parameters in another order drawn again")
	}
}

// Many requests waiting for a slot: beyond maxWaiting, refused at once.
func TestBusy(t *testing.T) {
	s := testServer(t)
	s.waiting.Store(maxWaiting)
	_, err := s.Attribution(context.Background(), 0, Request{Method: "Saliency"})
	if !errors.Is(err, ErrBusy) {
		t.Errorf("with %d waiting: %v", maxWaiting, err)
	}
	if msg, code := attributionError(err, time.Second); code != http.StatusServiceUnavailable {
		t.Errorf("busy: %d %s", code, msg)
	}
	s.waiting.Store(0)
}

// The page runs under the Content-Security-Policy: no inline script,
// style or event handler attribute (which the policy would block).
func TestPageHasNothingInline(t *testing.T) {
	s := testServer(t)
	h := handler(t, s)
	page := body(do(t, h, "/", bearer(testToken)))
	for _, re := range []string{`<script(\s[^>]*)?>[^<]`, `<script>`, `<style`, `\sstyle=`, `\son[a-z]+=`, `javascript:`} {
		if m := regexp.MustCompile(`(?i)` + re).FindString(page); m != "" {
			t.Errorf("the page has %q, which the CSP blocks", m)
		}
	}
	js := body(do(t, h, "/page.js", bearer(testToken)))
	for _, bad := range []string{"eval(", "new Function", "setAttribute(\"style", "setAttribute(\"on", "document.write"} {
		if strings.Contains(js, bad) {
			t.Errorf("page.js uses %s", bad)
		}
	}
	if resp := do(t, h, "/page.js", bearer(testToken)); !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") {
		t.Errorf("page.js served as %s", resp.Header.Get("Content-Type"))
	}
	if resp := do(t, h, "/page.css", bearer(testToken)); !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") {
		t.Errorf("page.css served as %s", resp.Header.Get("Content-Type"))
	}
}
