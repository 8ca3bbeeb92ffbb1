package insights

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/loupe-ml/loupe/internal/httpguard"
)

// Config is who may use the app and how much a request may take.
type Config struct {
	// Token is the secret every request must show (required): the token
	// query parameter (which sets a cookie and redirects to the URL
	// without it), that cookie, or an Authorization: Bearer header.
	// NewToken makes one.
	Token string
	// Timeout bounds each attribution, waiting for a slot included
	// (0: DefaultTimeout). An attribution also stops when its client
	// leaves.
	Timeout time.Duration
	// Hosts are more host names (without a port) accepted in a request's
	// Host header, beside localhost, 127.0.0.1, [::1] and the address the
	// request came in on; any other Host is refused (DNS rebinding).
	Hosts []string
	// Addr is the address served on (host:port), for requests that do
	// not carry theirs (http.LocalAddrContextKey, set by http.Server); the
	// Host header's port must be its port.
	Addr string
}

// DefaultTimeout is how long an attribution may take when Config.Timeout
// is 0.
const DefaultTimeout = 60 * time.Second

func (c Config) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

// NewToken returns a random token: 32 bytes from crypto/rand, in hex.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// NewHTTPServer returns an http.Server for an Insights handler, with
// timeouts on reading, writing (an attribution's timeout and some) and
// idle connections, and a bound on the header's size.
func NewHTTPServer(h http.Handler, c Config) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      c.timeout() + 30*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    maxHeaderBytes,
	}
}

// maxHeaderBytes bounds a request's header (its line included).
const maxHeaderBytes = 16 << 10

// maxQuery and maxPath bound a request's query string and path: longer
// ones get 414.
const (
	maxQuery = 4 << 10
	maxPath  = 1 << 10
)

// contentSecurityPolicy lets the page load its script, style, pictures
// and data from the server only, and no page frame it.
const contentSecurityPolicy = "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// guard is the app's door: headers on every response, then the request's
// size, Host, origin and token checked, in that order.
type guard struct {
	next   http.Handler
	cfg    Config
	token  httpguard.Token
	cookie string // the cookie's name, one per token
}

func newGuard(next http.Handler, c Config) (*guard, error) {
	if c.Token == "" {
		return nil, errors.New("insights: no token (see NewToken)")
	}
	sum := sha256.Sum256([]byte("loupe insights cookie\x00" + c.Token))
	return &guard{next: next, cfg: c, token: httpguard.NewToken(c.Token),
		cookie: "loupe_insights_" + hex.EncodeToString(sum[:6])}, nil
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	if len(r.URL.RawQuery) > maxQuery || len(r.URL.Path) > maxPath {
		http.Error(w, "request URL too long", http.StatusRequestURITooLong)
		return
	}
	if !g.hostAllowed(r) {
		http.Error(w, "forbidden: unknown Host "+httpguard.QuoteShort(r.Host), http.StatusForbidden)
		return
	}
	if why := httpguard.CrossSite(r, "http://"+r.Host); why != "" {
		http.Error(w, "forbidden: cross-site request ("+why+")", http.StatusForbidden)
		return
	}
	q := r.URL.Query()
	if q.Has("token") {
		if !g.token.Valid(q.Get("token")) {
			g.unauthorized(w)
			return
		}
		// Keep the token in an HttpOnly cookie for the page and its
		// requests, and out of the address bar, history and logs.
		http.SetCookie(w, &http.Cookie{Name: g.cookie, Value: q.Get("token"), Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
		q.Del("token")
		u := *r.URL
		u.RawQuery = q.Encode()
		// An absolute URL on the checked Host: a path like //evil.com
		// stays a path.
		http.Redirect(w, r, "http://"+r.Host+u.RequestURI(), http.StatusFound)
		return
	}
	if !g.authorized(r) {
		g.unauthorized(w)
		return
	}
	g.next.ServeHTTP(w, r)
}

// authorized says whether a request shows the token, in its cookie or an
// Authorization: Bearer header.
func (g *guard) authorized(r *http.Request) bool {
	if c, err := r.Cookie(g.cookie); err == nil && g.token.Valid(c.Value) {
		return true
	}
	return g.token.Bearer(r)
}

func (g *guard) unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="loupe insights"`)
	http.Error(w, "unauthorized: open the URL with ?token= that loupe insights printed, or send Authorization: Bearer <token>", http.StatusUnauthorized)
}

// hostAllowed says whether a request's Host names this server: localhost,
// a loopback address, the address the request came in on, or one of
// Config.Hosts; with the port served on. Any other name (a DNS-rebinding
// page's) is refused.
func (g *guard) hostAllowed(r *http.Request) bool {
	host, port, err := net.SplitHostPort(r.Host)
	if err != nil {
		host, port = r.Host, "80"
	}
	host = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	local := g.cfg.Addr
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		local = a.String()
	}
	lhost, lport, err := net.SplitHostPort(local)
	if err != nil || port != lport {
		return false
	}
	switch host {
	case "localhost", "127.0.0.1", "::1":
		return true
	}
	if ip := net.ParseIP(host); ip != nil {
		if lip := net.ParseIP(lhost); lip != nil && lip.Equal(ip) && !lip.IsUnspecified() {
			return true
		}
	}
	for _, h := range g.cfg.Hosts {
		if strings.EqualFold(h, host) {
			return true
		}
	}
	return false
}
