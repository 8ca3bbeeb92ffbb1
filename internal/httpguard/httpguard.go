// Package httpguard holds the request checks that loupe's HTTP servers
// (Insights and serve) share: a bearer token compared in constant time, and
// the refusal of requests that a browser sends on behalf of another site's
// page.
package httpguard

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// Token is the SHA-256 of a secret token, compared in constant time.
type Token [sha256.Size]byte

// NewToken hashes a secret token.
func NewToken(secret string) Token { return sha256.Sum256([]byte(secret)) }

// Valid compares a token with t in constant time.
func (t Token) Valid(token string) bool {
	sum := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(sum[:], t[:]) == 1
}

// Bearer says whether the request's Authorization: Bearer header carries
// the token.
func (t Token) Bearer(r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	return len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ") && t.Valid(strings.TrimSpace(auth[7:]))
}

// CrossSite says why a request comes from another site's page, or "": a
// Sec-Fetch-Site other than same-origin or none, or an Origin header that
// is not one of origins.
func CrossSite(r *http.Request, origins ...string) string {
	switch s := r.Header.Get("Sec-Fetch-Site"); s {
	case "", "same-origin", "none":
	default:
		return "Sec-Fetch-Site: " + QuoteShort(s)
	}
	if o, ok := r.Header["Origin"]; ok {
		if len(o) != 1 || !contains(origins, o[0]) {
			return "Origin " + QuoteShort(strings.Join(o, ", "))
		}
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// QuoteShort quotes a header's value for an error message, cut to 100
// bytes, with control and non-ASCII characters as '?'.
func QuoteShort(s string) string {
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
