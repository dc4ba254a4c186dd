package fakeprovider

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// FailMode is a way for a token request to go wrong, injected with Server.Fail.
// The zero value is not a mode.
type FailMode int

const (
	// Fail500 answers 500 with a JSON error body.
	Fail500 FailMode = iota + 1
	// Fail503HTML answers 503 with an HTML error page (text/html), as a proxy
	// or load balancer in front of a provider does.
	Fail503HTML
	// FailHTML200 answers 200 with an HTML login page (text/html), as an SSO
	// gateway that intercepted the request does.
	FailHTML200
	// Fail429 answers 429 with Retry-After: 2.
	Fail429
	// FailDropAfterConsume processes the request fully (a refresh token is
	// consumed, new tokens are issued and counted) and then closes the TCP
	// connection without writing a response: the client loses the rotated
	// refresh token, the worst case for a single-use chain.
	FailDropAfterConsume
	// FailTimeout never answers; the handler waits until the request context
	// ends (client timeout or disconnect) or the server closes.
	FailTimeout
	// FailEchoSecret answers 400 with an error whose error_description, title
	// and message repeat every secret the client sent (client_secret, Basic
	// password, apiKey, refresh token), to test that the client redacts
	// provider errors before showing them.
	FailEchoSecret
	// FailNoAccessToken answers 200 with JSON that has no access_token.
	FailNoAccessToken
	// FailHugeBody answers 200 with a 2 MiB JSON body.
	FailHugeBody
	// FailWrongTypes answers 200 with access_token as a number and
	// expires_in as an object.
	FailWrongTypes
)

// HugeBodySize is the exact size of a FailHugeBody response body.
const HugeBodySize = 2 << 20

var failModeNames = []string{
	"",
	"Fail500",
	"Fail503HTML",
	"FailHTML200",
	"Fail429",
	"FailDropAfterConsume",
	"FailTimeout",
	"FailEchoSecret",
	"FailNoAccessToken",
	"FailHugeBody",
	"FailWrongTypes",
}

// String names the mode as its constant does.
func (m FailMode) String() string { return enumName(failModeNames, int(m), "FailMode") }

// Fail makes the next n token requests (to any token endpoint, in arrival
// order; /api/whoami excluded) fail with mode. Calls queue up: Fail(1, A)
// then Fail(2, B) fails one request with A and the two after it with B.
//
// n must be at least 1: Fail panics otherwise. (Fail(0, …) used to cancel
// every pending failure; that is ClearFailures now, and the panic makes a
// caller written for the old meaning fail loudly instead of silently
// keeping its failures queued.)
func (s *Server) Fail(n int, mode FailMode) {
	if n <= 0 {
		panic(fmt.Sprintf("fakeprovider: Fail(%d, %v): n must be at least 1; use ClearFailures to cancel pending failures", n, mode))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures.push(mode, n)
}

// ClearFailures cancels every pending failure queued by Fail and every
// pending refusal queued by RefuseRefreshes.
func (s *Server) ClearFailures() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = nil
	s.forcedRefusals = nil
}

// injectFailure answers x the way mode says. w is the wrapped writer; raw is
// the connection's own writer, needed to hijack. FailDropAfterConsume and
// FailTimeout end the exchange without an answer.
func (s *Server) injectFailure(w http.ResponseWriter, raw http.ResponseWriter, x *exchange, mode FailMode, h dialectHandler) {
	switch mode {
	case Fail503HTML:
		writeHTML(w, http.StatusServiceUnavailable, html503)
	case FailHTML200:
		writeHTML(w, http.StatusOK, htmlLogin)
	case Fail429:
		w.Header().Set("Retry-After", "2")
		writeJSON(w, http.StatusTooManyRequests, contentTypeJSON, map[string]string{
			"error": "rate_limited", "error_description": "too many requests; retry after 2 seconds",
		})
	case FailDropAfterConsume:
		h(&discardWriter{header: http.Header{}}, x)
		conn, _, err := http.NewResponseController(raw).Hijack()
		if err != nil {
			// Cannot hijack (not HTTP/1.x): abort the response instead,
			// which also leaves the client without an answer.
			panic(http.ErrAbortHandler)
		}
		_ = conn.Close()
	case FailTimeout:
		select {
		case <-x.r.Context().Done():
		case <-s.done:
		}
		// Still answer nothing, even if the client is somehow still there.
		panic(http.ErrAbortHandler)
	case FailEchoSecret:
		writeEchoSecret(w, x)
	case FailNoAccessToken:
		writeJSON(w, http.StatusOK, contentTypeJSON, map[string]any{
			"token_type": "Bearer", "expires_in": 3600,
		})
	case FailHugeBody:
		writeHugeBody(w)
	case FailWrongTypes:
		writeJSON(w, http.StatusOK, contentTypeJSON, map[string]any{
			"access_token": 1234567890,
			"token_type":   "Bearer",
			"expires_in":   map[string]any{"seconds": 3600},
		})
	default: // Fail500, and any unknown mode
		writeJSON(w, http.StatusInternalServerError, contentTypeJSON, map[string]string{
			"error": "server_error", "error_description": "internal error (injected by fakeprovider)",
		})
	}
}

const html503 = `<!DOCTYPE html>
<html><head><title>503 Service Temporarily Unavailable</title></head>
<body><center><h1>503 Service Temporarily Unavailable</h1></center><hr><center>nginx</center></body></html>
`

const htmlLogin = `<!DOCTYPE html>
<html><head><title>Sign in</title></head>
<body><h1>Sign in to continue</h1>
<form method="post" action="/login"><label>Username <input name="username"></label>
<label>Password <input type="password" name="password"></label><button type="submit">Sign in</button></form>
</body></html>
`

func writeHTML(w http.ResponseWriter, status int, page string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(page)))
	w.WriteHeader(status)
	_, _ = w.Write([]byte(page))
}

// writeEchoSecret answers like a careless provider that quotes the rejected
// credentials back. The same text goes in every field a client might show
// (OAuth error_description, api.video title, Endorsed message).
func writeEchoSecret(w http.ResponseWriter, x *exchange) {
	var sent []string
	for _, k := range []string{"client_secret", "apiKey", "api_key", "refresh_token", "refreshToken"} {
		if v := x.rec.Params[k]; v != "" {
			sent = append(sent, k+"="+v)
		}
	}
	if _, secret, err := parseBasic(x.r.Header.Get("Authorization")); err == nil && secret != "" {
		sent = append(sent, "basic_password="+secret)
	}
	text := "credentials rejected"
	if len(sent) > 0 {
		text = fmt.Sprintf("credentials rejected: %s", strings.Join(sent, " "))
	}
	writeJSON(w, http.StatusBadRequest, contentTypeJSON, map[string]any{
		"error":             "invalid_request",
		"error_description": text,
		"type":              "https://docs.api.video/reference/fakeprovider-echo-secret",
		"title":             text,
		"status":            http.StatusBadRequest,
		"is_error":          true,
		"message":           text,
	})
}

// writeHugeBody writes a syntactically valid token response of exactly
// HugeBodySize bytes, to test the client's response size cap.
func writeHugeBody(w http.ResponseWriter) {
	const prefix = `{"access_token":"at_huge","token_type":"Bearer","expires_in":3600,"padding":"`
	const suffix = `"}`
	w.Header().Set("Content-Type", contentTypeJSON)
	w.Header().Set("Content-Length", strconv.Itoa(HugeBodySize))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(prefix))
	_, _ = w.Write([]byte(strings.Repeat("x", HugeBodySize-len(prefix)-len(suffix))))
	_, _ = w.Write([]byte(suffix))
}
