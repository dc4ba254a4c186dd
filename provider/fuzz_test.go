package provider

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParseResponse: any provider answer yields a usable token or an *Error,
// never a panic, and a token always has an access token and a sane lifetime.
func FuzzParseResponse(f *testing.F) {
	f.Add(200, "application/json", []byte(`{"access_token":"at","expires_in":"1209600","scope":["a"]}`))
	f.Add(400, "application/json", []byte(`{"error":"invalid_grant","error_description":"x"}`))
	f.Add(200, "application/x-www-form-urlencoded", []byte(`access_token=a&expires_in=1e9`))
	f.Add(401, "application/problem+json", []byte(`{"type":"a/b","title":"t","status":401}`))
	f.Add(200, "text/html", []byte(`<html>`))
	f.Add(200, "", []byte(`{"is_error":true,"message":7}`))
	f.Fuzz(func(t *testing.T, status int, contentType string, body []byte) {
		tok, err := parseResponse(status, contentType, body)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not *Error", err)
			}
			if pe.Class < Temporary || pe.Class > Refused {
				t.Fatalf("error %v has no class (%d)", err, pe.Class)
			}
			return
		}
		if tok.AccessToken == "" || tok.ExpiresIn < 0 || tok.ExpiresIn > maxLifetime || tok.TokenType == "" {
			t.Fatalf("unusable token accepted: %+v", tok)
		}
	})
}

// FuzzRedact: redaction removes every secret, whatever surrounds it.
func FuzzRedact(f *testing.F) {
	f.Add("the secret is hunter2", "hunter2")
	f.Add("a\x00b", "b")
	f.Fuzz(func(t *testing.T, s, secret string) {
		if len(secret) < 4 || strings.ContainsFunc(secret, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return
		}
		out := strings.ReplaceAll(redact(s, []string{secret}), "[redacted]", "\x00")
		if strings.Contains(out, secret) && len(out) <= maxDescription {
			t.Fatalf("redact(%q) = %q still holds the secret", s, out)
		}
	})
}
