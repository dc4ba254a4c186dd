package tokenbroker

// What a provider quotes back reaches the people who may only authorize a
// name, or anyone holding a callback link, without the operator's secrets
// and never as HTML.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	hclog "github.com/hashicorp/go-hclog"
)

// refusingTokenEndpoint answers every token request 400 with describe's
// error_description, given the request's Authorization header and body.
func refusingTokenEndpoint(t *testing.T, describe func(auth, body string) string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant", "error_description": describe(r.Header.Get("Authorization"), string(body))})
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/token"
}

// TestCallbackPageShowsNoClientSecret: with auth_style=basic, a provider
// that quotes the request back when it refuses the code gets neither the
// client secret nor HTTP Basic's base64 of it onto the callback page (which
// whoever started authorize/<name> reads), into status/ or into the log.
func TestCallbackPageShowsNoClientSecret(t *testing.T) {
	cases := []struct {
		name     string
		describe func(auth, body string) string
	}{
		{"Authorization header", func(auth, _ string) string { return "bad client: " + auth }},
		{"decoded Basic credentials", func(auth, _ string) string {
			raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(auth, "Basic "))
			return "bad client: " + string(raw)
		}},
		{"request body", func(_, body string) string { return "bad request: " + body }},
	}
	basic := base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(testClientID) + ":" + url.QueryEscape(testClientSecret)))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			var logs syncBuffer
			e.b.setLogger(hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: &logs}))
			e.userConfig("echo", map[string]any{"token_url": refusingTokenEndpoint(t, c.describe), "ca_pem": nil, "auth_style": "basic"})
			_, state := e.authorize("echo")
			status, page := e.callback(url.Values{"state": {state}, "code": {"a-code-the-provider-refuses"}})
			shown := map[string]string{"callback page": page, "status": fmt.Sprint(e.status("echo")), "log": logs.String()}
			for where, text := range shown {
				for _, secret := range []string{testClientSecret, basic, strings.TrimRight(basic, "=")} {
					if strings.Contains(text, secret) {
						t.Errorf("%s holds %q:\n%s", where, secret, text)
					}
				}
			}
			if status != http.StatusBadGateway || !strings.Contains(page, "[redacted]") {
				t.Errorf("callback = %d %q, want 502 with the provider's answer shown redacted", status, page)
			}
		})
	}
}

// TestCallbackPageEscapesProviderText: the callback page is HTML; markup in
// a provider's error_description is shown as text, never rendered.
func TestCallbackPageEscapesProviderText(t *testing.T) {
	e := newEnv(t)
	e.userConfig("markup", map[string]any{"ca_pem": nil,
		"token_url": refusingTokenEndpoint(t, func(_, _ string) string { return `<script>alert(1)</script><img src=x onerror=alert(2)>` })})
	_, state := e.authorize("markup")
	_, page := e.callback(url.Values{"state": {state}, "code": {"a-code-the-provider-refuses"}})
	if strings.Contains(page, "<script>") || strings.Contains(page, "<img") {
		t.Fatalf("page renders the provider's markup:\n%s", page)
	}
	if !strings.Contains(page, "&lt;script&gt;") {
		t.Fatalf("page = %s, want the provider's text shown escaped", page)
	}
}
