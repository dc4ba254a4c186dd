package fakeprovider

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxRequestBody caps what the fake reads from a client; token requests are tiny.
const maxRequestBody = 1 << 20

const (
	contentTypeForm = "application/x-www-form-urlencoded"
	contentTypeJSON = "application/json"
)

// RecordedRequest is what the fake saw of one request, for assertions on the
// client's wire format.
type RecordedRequest struct {
	Method      string
	Path        string
	ContentType string      // the Content-Type header as sent; "" when absent
	Header      http.Header // a copy of all request headers
	// Query holds the URL query parameters (first value of each).
	Query map[string]string
	// Params holds the body parameters (form fields, or the members of a JSON
	// object) merged over Query: the body wins. JSON strings appear as is;
	// other JSON values as their compact JSON text (e.g. `["all:read"]`).
	Params map[string]string
	// JSON is the body decoded as a JSON object; nil when the body is not one.
	JSON map[string]any
	// HasAuthorization reports an Authorization header, of any scheme.
	HasAuthorization bool
	// BasicAuth reports a well-formed HTTP Basic Authorization header.
	BasicAuth bool
	// ClientID is the client id the request carried: from HTTP Basic (after
	// form-url-decoding) or else the client_id parameter.
	ClientID string
	// SecretSent reports that a credential secret was sent: a client_secret
	// or apiKey parameter (present, even if empty; body, query or JSON), or a
	// non-empty HTTP Basic password.
	SecretSent bool
}

// exchange is one token request as the dialect handlers see it: the body has
// already been read (and recorded), so handlers never touch r.Body.
type exchange struct {
	r    *http.Request
	body []byte
	rec  RecordedRequest
}

// dialectHandler answers one token request.
type dialectHandler func(w http.ResponseWriter, x *exchange)

// tokenEndpoint wraps a dialect handler with the machinery every token
// endpoint shares: body capture and recording, counters, latency, failure
// injection, no-store headers and the one-line request log.
func (s *Server) tokenEndpoint(d Dialect, h dialectHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, readErr := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
		x := &exchange{r: r, body: body, rec: recordRequest(r, body)}

		s.mu.Lock()
		s.total++
		s.last[r.URL.Path] = x.rec
		mode, failing := s.failures.take()
		latency := s.latency
		s.mu.Unlock()

		sw := &statusWriter{ResponseWriter: w}
		outcome := ""
		defer func() {
			if outcome == "" {
				outcome = strconv.Itoa(sw.status)
				if sw.status == 0 {
					outcome = "no-response"
				}
			}
			injected := ""
			if failing {
				injected = " injected=" + mode.String()
			}
			// Only fixed vocabulary goes in this line: never a secret or token.
			s.logf("fakeprovider: dialect=%s endpoint=%s grant=%s status=%s%s",
				d, r.URL.Path, safeGrant(d, r.URL.Path, x.rec), outcome, injected)
		}()

		// RFC 6749 §5.1: token responses must not be cached. Set on every
		// answer of a token endpoint, errors included.
		sw.Header().Set("Cache-Control", "no-store")
		sw.Header().Set("Pragma", "no-cache")

		if !s.sleep(r.Context(), latency) {
			outcome = "cancelled"
			// Answer nothing: net/http closes the connection on this panic.
			panic(http.ErrAbortHandler)
		}
		if failing {
			switch mode { // set first: these two never return normally
			case FailDropAfterConsume:
				outcome = "dropped"
			case FailTimeout:
				outcome = "timeout"
			}
			s.injectFailure(sw, w, x, mode, h)
			return
		}
		if readErr != nil || len(body) > maxRequestBody {
			writeJSON(sw, http.StatusRequestEntityTooLarge, contentTypeJSON, map[string]string{
				"error": "invalid_request", "error_description": "request body too large or unreadable",
			})
			return
		}
		h(sw, x)
	})
}

// sleep waits d; false when the request or the server ended first.
func (s *Server) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.done:
		return false
	}
}

// safeGrant names the grant for the log line, only from a fixed list so a
// confused client cannot get a secret logged through grant_type.
func safeGrant(d Dialect, path string, rec RecordedRequest) string {
	if d == APIVideo {
		if path == PathAPIVideoRefresh {
			return grantRefreshToken
		}
		return grantAPIKey
	}
	switch g := rec.Params["grant_type"]; g {
	case grantClientCredentials, grantRefreshToken, "password", "authorization_code", grantDeviceCode, grantTokenExchange:
		return g
	case "":
		return "-"
	default:
		return "other"
	}
}

// recordRequest parses a request generously (whatever the dialect would
// accept) so tests can see what a client sent even when it was rejected.
func recordRequest(r *http.Request, body []byte) RecordedRequest {
	rec := RecordedRequest{
		Method:           r.Method,
		Path:             r.URL.Path,
		ContentType:      r.Header.Get("Content-Type"),
		Header:           r.Header.Clone(),
		Query:            map[string]string{},
		Params:           map[string]string{},
		HasAuthorization: r.Header.Get("Authorization") != "",
	}
	for k, v := range r.URL.Query() {
		rec.Query[k] = v[0]
		rec.Params[k] = v[0]
	}
	switch mt := mediaType(r); {
	case mt == contentTypeJSON || strings.HasSuffix(mt, "+json"):
		if m, err := decodeJSONObject(body); err == nil {
			rec.JSON = m
			for k, v := range m {
				if s, ok := v.(string); ok {
					rec.Params[k] = s
				} else {
					b, _ := json.Marshal(v)
					rec.Params[k] = string(b)
				}
			}
		}
	case mt == contentTypeForm || mt == "":
		if form, err := url.ParseQuery(string(body)); err == nil {
			for k, v := range form {
				rec.Params[k] = v[0]
			}
		}
	}
	_, hasSecret := rec.Params["client_secret"]
	_, hasKey := rec.Params["apiKey"]
	rec.SecretSent = hasSecret || hasKey
	rec.ClientID = rec.Params["client_id"]
	if id, secret, err := parseBasic(r.Header.Get("Authorization")); err == nil {
		rec.BasicAuth = true
		rec.ClientID = id
		rec.SecretSent = rec.SecretSent || secret != ""
	}
	return rec
}

// mediaType is the lower-cased media type of the request ("" when there is no
// Content-Type; the raw header when it does not parse, which matches nothing).
func mediaType(r *http.Request) string {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(ct))
	}
	return mt
}

// decodeJSONObject accepts exactly one JSON object and nothing after it.
func decodeJSONObject(body []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("body is not a JSON object: %w", err)
	}
	if m == nil {
		return nil, errors.New("body is not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the JSON object")
	}
	return m, nil
}

// jsonString reads member k of m: present reports it exists; err is set when
// it exists but is not a string.
func jsonString(m map[string]any, k string) (v string, present bool, err error) {
	raw, ok := m[k]
	if !ok || raw == nil {
		return "", false, nil
	}
	v, ok = raw.(string)
	if !ok {
		return "", true, fmt.Errorf("%s must be a string", k)
	}
	return v, true, nil
}

var errNotBasic = errors.New("not HTTP Basic")

// parseBasic decodes HTTP Basic credentials per RFC 6749 §2.3.1: the id and
// secret were form-url-encoded before being joined with ':' and base64-encoded,
// so each half is url-decoded after splitting.
func parseBasic(header string) (id, secret string, err error) {
	scheme, payload, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return "", "", errNotBasic
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(payload))
	if err != nil {
		return "", "", fmt.Errorf("malformed Basic credentials: %w", err)
	}
	encID, encSecret, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", "", errors.New("malformed Basic credentials: no ':'")
	}
	if id, err = url.QueryUnescape(encID); err != nil {
		return "", "", fmt.Errorf("malformed Basic client id: %w", err)
	}
	if secret, err = url.QueryUnescape(encSecret); err != nil {
		return "", "", fmt.Errorf("malformed Basic client secret: %w", err)
	}
	return id, secret, nil
}

// writeJSON writes v as the whole response.
func writeJSON(w http.ResponseWriter, status int, contentType string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "fakeprovider: encoding response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// statusWriter remembers the status code for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// discardWriter lets a handler run to completion (consuming and issuing
// tokens) while its answer is thrown away, for FailDropAfterConsume.
type discardWriter struct {
	header http.Header
	status int
}

func (w *discardWriter) Header() http.Header { return w.header }
func (w *discardWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *discardWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return len(p), nil
}
