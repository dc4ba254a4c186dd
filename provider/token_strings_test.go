package provider

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestTokenStrings: the strings of a token answer are accepted only in the
// character sets of RFC 6749 Appendix A, without spaces in tokens; anything
// else refuses the whole answer (not temporary: it would be retried
// forever) with an error that names the field and never shows the value.
func TestTokenStrings(t *testing.T) {
	const json, form = "application/json", "application/x-www-form-urlencoded"
	cases := []struct {
		name, contentType, body string
		refused                 string // the field named in the error; "" when the token is accepted
		hidden                  string // a part of the value the error must not show
	}{
		{"opaque token with every VSCHAR but space", json, `{"access_token":"a!#$%&'()*+,-./:;<=>?@[\\]^_{|}~z","token_type":"Bearer"}`, "", ""},
		{"markup in an access token is VSCHAR", json, `{"access_token":"<script>alert(1)</script>"}`, "", ""},
		{"token type a URI", json, `{"access_token":"at","token_type":"urn:ietf:params:oauth:token-type:jwt"}`, "", ""},
		{"token type N_A", json, `{"access_token":"at","token_type":"N_A"}`, "", ""},
		{"scope with every NQCHAR", json, `{"access_token":"at","scope":"a!#$%&'()*+,-./:;<=>?@[]^_{|}~ b"}`, "", ""},

		{"CR LF in the access token", json, `{"access_token":"at\r\nX-Evil: 1"}`, "access_token", "X-Evil"},
		{"escape in the access token", json, `{"access_token":"at\u001b[2Jgone"}`, "access_token", "gone"},
		{"space in the access token", json, `{"access_token":"two words"}`, "access_token", "words"},
		{"NUL in the access token", json, `{"access_token":"at\u0000x"}`, "access_token", ""},
		{"DEL in the access token", json, `{"access_token":"at\u007fx"}`, "access_token", ""},
		{"non-ASCII access token", json, `{"access_token":"jéton"}`, "access_token", "jéton"},
		{"invalid UTF-8 access token", json, "{\"access_token\":\"a\xffb\"}", "access_token", ""},
		{"line break in a form answer", form, "access_token=at%0D%0ASet-Cookie:x", "access_token", "Set-Cookie"},
		{"line break in the refresh token", json, `{"access_token":"at","refresh_token":"rt\nsecond"}`, "refresh_token", "second"},
		{"space in the refresh token", json, `{"access_token":"at","refresh_token":"r t"}`, "refresh_token", ""},
		{"markup as token type", json, `{"access_token":"at","token_type":"<script>"}`, "token_type", "script"},
		{"space in the token type", json, `{"access_token":"at","token_type":"Bearer x"}`, "token_type", ""},
		{"escape in the token type", json, `{"access_token":"at","token_type":"Bearer\u001b]0;x"}`, "token_type", ""},
		{"tab between scopes", json, `{"access_token":"at","scope":"read\twrite"}`, "scope", "write"},
		{"quote in a scope", json, `{"access_token":"at","scope":"a \"b\""}`, "scope", ""},
		{"backslash in a scope array", json, `{"access_token":"at","scope":["ok","b\\c"]}`, "scope", ""},
		{"space inside a scope array element", json, `{"access_token":"at","scope":["read write"]}`, "scope", ""},
		{"line break in a form scope", form, "access_token=at&scope=read%0Awrite", "scope", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok, err := parseResponse(200, c.contentType, []byte(c.body))
			if c.refused == "" {
				if err != nil {
					t.Fatalf("parseResponse(%s) = %v, want a token", c.body, err)
				}
				return
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("parseResponse(%s) = %+v, %v; want a refusal naming %s", c.body, tok, err, c.refused)
			}
			if pe.Class != Refused || !strings.Contains(err.Error(), "the provider's "+c.refused+" ") || !strings.Contains(err.Error(), "RFC 6749") {
				t.Fatalf("error = %v (class %v), want refused, naming %s and RFC 6749", err, pe.Class, c.refused)
			}
			if c.hidden != "" && strings.Contains(err.Error(), c.hidden) {
				t.Fatalf("error %q shows the value (%q)", err, c.hidden)
			}
		})
	}
}

// TestScopeSplitting: scope is split at spaces only (RFC 6749 §3.3), runs
// of them included; an array's empty elements are dropped.
func TestScopeSplitting(t *testing.T) {
	cases := []struct{ body, want string }{
		{`{"access_token":"at","scope":" read  write "}`, "read|write"},
		{`{"access_token":"at","scope":["read","","write"]}`, "read|write"},
		{`{"access_token":"at","scope":"repo,gist"}`, "repo,gist"},
	}
	for _, c := range cases {
		t.Run(c.body, func(t *testing.T) {
			tok, err := parseResponse(200, "application/json", []byte(c.body))
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(tok.Scopes, "|"); got != c.want {
				t.Fatalf("scopes = %q, want %q", got, c.want)
			}
		})
	}
}

// TestHugeLifetimes: a lifetime beyond float64's range is absurd, not
// unreadable: it is capped like any absurd lifetime, and the token kept.
func TestHugeLifetimes(t *testing.T) {
	cases := []struct {
		body string
		want time.Duration
	}{
		{`{"access_token":"at","expires_in":1e400}`, maxLifetime},
		{`{"access_token":"at","expires_in":"1e400"}`, maxLifetime},
		{`{"access_token":"at","expires_in":-1e400}`, 0},
		{`{"access_token":"at","expires_in":123456789012345678901234567890}`, maxLifetime},
	}
	for _, c := range cases {
		t.Run(c.body, func(t *testing.T) {
			tok, err := parseResponse(200, "application/json", []byte(c.body))
			if err != nil || tok.ExpiresIn != c.want {
				t.Fatalf("parseResponse = %+v, %v; want expires in %v", tok, err, c.want)
			}
		})
	}
}

// TestInstallationTokenStrings: a GitHub installation token (not an RFC
// 6749 answer) obeys the same rule.
func TestInstallationTokenStrings(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(201)
		io.WriteString(w, `{"token":"ghs_x\r\nX-Evil: 1","expires_at":"2026-11-25T13:00:00Z"}`)
	}))
	t.Cleanup(srv.Close)
	e := &Endpoint{Dialect: GitHubApp, Now: sigClock, Key: &SigningKey{Signer: sigRSA},
		Installation: &Installation{AppID: "1234", InstallationID: "42", APIURL: srv.URL}}
	_, err := (&Client{HTTP: srv.Client()}).Exchange(context.Background(), e, GrantInstallationToken, "")
	var pe *Error
	if !errors.As(err, &pe) || pe.Class != Refused || strings.Contains(err.Error(), "X-Evil") {
		t.Fatalf("Exchange = %v, want a refusal that does not show the token", err)
	}
}
