package serve

import (
	"mime"
	"net/http"
	"strings"

	"github.com/loupe-ml/loupe/internal/httpguard"
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
// The token comparison and the cross-site checks are internal/httpguard's,
// shared with Insights; the Content-Type check is this API's own.

// authorized says whether a request shows the token in an
// Authorization: Bearer header (always true without a token).
func (s *Server) authorized(r *http.Request) bool {
	if s.token == nil {
		return true
	}
	return s.token.Bearer(r)
}

// crossSite says why a request comes from another site's page, or "".
func crossSite(r *http.Request) string {
	if why := httpguard.CrossSite(r, "http://"+r.Host, "https://"+r.Host); why != "" {
		return why
	}
	if r.Method == http.MethodPost {
		if ct := r.Header.Get("Content-Type"); ct != "" {
			mt, _, err := mime.ParseMediaType(ct)
			if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
				return "Content-Type " + httpguard.QuoteShort(ct) + ", want application/json"
			}
		}
	}
	return ""
}
