package serve

import (
	"crypto/sha256"
	"crypto/subtle"
	"mime"
	"net/http"
	"strings"
)

// The server's door, checked before any route: the token, then requests
// from browsers' pages on other sites. A JSON API called by services does
// not check the Host header (services call it by any name a proxy or a
// service mesh gives it), but it refuses what a browser sends on behalf of
// another site's page: an Origin header that is not the server's own, a
// Sec-Fetch-Site other than same-origin or none, and a POST whose body is
// not JSON (an HTML form can post text/plain or form data to any site
// without a preflight; application/json needs one, which this server never
// grants). With those refused, a page a user visits cannot make the
// user's browser run models on a server it can reach.
//
// These checks are insights' crossSite and token comparison, written for
// an API: both could move into one internal package (internal/httpguard)
// when insights is next changed.

// authorized says whether a request shows the token in an
// Authorization: Bearer header (always true without a token).
func (s *Server) authorized(r *http.Request) bool {
	if s.token == nil {
		return true
	}
	auth := r.Header.Get("Authorization")
	if len(auth) <= 7 || !strings.EqualFold(auth[:7], "bearer ") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(auth[7:])))
	return subtle.ConstantTimeCompare(sum[:], s.token) == 1
}

// crossSite says why a request comes from another site's page, or "".
func crossSite(r *http.Request) string {
	switch s := r.Header.Get("Sec-Fetch-Site"); s {
	case "", "same-origin", "none":
	default:
		return "Sec-Fetch-Site: " + quoteShort(s)
	}
	if o, ok := r.Header["Origin"]; ok && (len(o) != 1 || (o[0] != "http://"+r.Host && o[0] != "https://"+r.Host)) {
		return "Origin " + quoteShort(strings.Join(o, ", "))
	}
	if r.Method == http.MethodPost {
		if ct := r.Header.Get("Content-Type"); ct != "" {
			mt, _, err := mime.ParseMediaType(ct)
			if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
				return "Content-Type " + quoteShort(ct) + ", want application/json"
			}
		}
	}
	return ""
}

// quoteShort quotes a header's value for an error message, cut to 100
// bytes.
func quoteShort(s string) string {
	if len(s) > 100 {
		s = s[:100] + "..."
	}
	return `"` + strings.Map(func(r rune) rune {
		if r < ' ' || r == '"' || r > '~' {
			return '?'
		}
		return r
	}, s) + `"`
}
