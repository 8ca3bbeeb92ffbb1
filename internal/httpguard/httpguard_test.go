package httpguard

import (
	"net/http/httptest"
	"testing"
)

func TestTokenAndCrossSite(t *testing.T) {
	tok := NewToken("s3cret")
	if !tok.Valid("s3cret") || tok.Valid("s3cre") || tok.Valid("") {
		t.Error("Valid accepts a wrong token or refuses the right one")
	}
	for _, tc := range []struct {
		auth string
		ok   bool
	}{{"Bearer s3cret", true}, {"bearer  s3cret ", true}, {"Bearer s3cre", false}, {"Basic s3cret", false}, {"", false}} {
		r := httptest.NewRequest("GET", "http://127.0.0.1:8080/", nil)
		if tc.auth != "" {
			r.Header.Set("Authorization", tc.auth)
		}
		if got := tok.Bearer(r); got != tc.ok {
			t.Errorf("Bearer with %q = %v, want %v", tc.auth, got, tc.ok)
		}
	}
	for _, tc := range []struct {
		header, value string
		refused       bool
	}{
		{"", "", false},
		{"Sec-Fetch-Site", "same-origin", false},
		{"Sec-Fetch-Site", "none", false},
		{"Sec-Fetch-Site", "cross-site", true},
		{"Sec-Fetch-Site", "same-site", true},
		{"Origin", "http://127.0.0.1:8080", false},
		{"Origin", "http://evil.example", true},
		{"Origin", "null", true},
	} {
		r := httptest.NewRequest("GET", "http://127.0.0.1:8080/", nil)
		if tc.header != "" {
			r.Header.Set(tc.header, tc.value)
		}
		if why := CrossSite(r, "http://"+r.Host); (why != "") != tc.refused {
			t.Errorf("%s: %q: CrossSite = %q, refused want %v", tc.header, tc.value, why, tc.refused)
		}
	}
	if got := QuoteShort("a\"b\n"); got != `"a?b?"` {
		t.Errorf("QuoteShort = %s", got)
	}
}
