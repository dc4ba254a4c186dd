package provider

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// recorded is what a test server saw of one token request.
type recorded struct {
	method, path, contentType, auth string
	query                           url.Values
	body                            string
}

func serve(t *testing.T, status int, contentType, body string) (*httptest.Server, *recorded) {
	t.Helper()
	rec := new(recorded)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		*rec = recorded{r.Method, r.URL.Path, r.Header.Get("Content-Type"), r.Header.Get("Authorization"), r.URL.Query(), string(b)}
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, rec
}

const okBody = `{"access_token":"at","expires_in":60,"refresh_token":"rt2"}`

// testClient is a Client as the plugin makes one, and a context that ends
// within 5 s.
func testClient(t *testing.T) (*Client, context.Context) {
	t.Helper()
	hc, err := NewHTTPClient("")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return &Client{HTTP: hc}, ctx
}

func exchange(t *testing.T, e *Endpoint, grant Grant, rt string) (*Token, error) {
	t.Helper()
	c, ctx := testClient(t)
	return c.Exchange(ctx, e, grant, rt)
}

func TestExchangeErrorsCarryNoSecret(t *testing.T) {
	srv, _ := serve(t, 400, "application/json", `{"error":"invalid_client","error_description":"secret s%26cret or s&cret or rt1 is wrong"}`)
	e := &Endpoint{Dialect: OAuth2, TokenURL: srv.URL, ClientID: "id", ClientSecret: "s&cret"}
	_, err := exchange(t, e, GrantRefreshToken, "rt1")
	if err == nil || strings.Contains(err.Error(), "s&cret") || strings.Contains(err.Error(), "s%26cret") || strings.Contains(err.Error(), "rt1") {
		t.Fatalf("error leaks a secret: %v", err)
	}
	if !strings.Contains(err.Error(), "[redacted]") {
		t.Fatalf("error = %v", err)
	}
}

func TestExchangeLimitsAndTransport(t *testing.T) {
	huge := `{"access_token":"` + strings.Repeat("a", MaxBody) + `"}`
	srv, _ := serve(t, 200, "application/json", huge)
	e := &Endpoint{Dialect: OAuth2, TokenURL: srv.URL, ClientID: "id", ClientSecret: "s"}
	if _, err := exchange(t, e, GrantClientCredentials, ""); err == nil || !strings.Contains(err.Error(), "larger than 1 MiB") {
		t.Fatalf("huge body: err = %v, want larger than 1 MiB", err)
	}

	redirect, _ := serve(t, 302, "text/plain", "")
	e.TokenURL = redirect.URL
	if _, err := exchange(t, e, GrantClientCredentials, ""); err == nil || !strings.Contains(err.Error(), "redirected") {
		t.Fatalf("redirect: err = %v, want redirected", err)
	}

	limited, _ := serve(t, 429, "application/json", `{"error":"slow_down"}`)
	e.TokenURL = limited.URL
	_, err := exchange(t, e, GrantClientCredentials, "")
	var pe *Error
	if !errors.As(err, &pe) || pe.Class != Temporary {
		t.Fatalf("429: err = %#v, want class temporary", err)
	}

	// A connection refused never carried the request: nothing can be spent.
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	e.TokenURL = closed.URL + "/token?client_secret=leak"
	_, err = exchange(t, e, GrantRefreshToken, "rt1")
	if !errors.As(err, &pe) || pe.Class != Temporary || strings.Contains(err.Error(), "leak") {
		t.Fatalf("refused connection: err = %#v (%v), want class temporary without the query", err, err)
	}

	// A connection dropped after the request was written may have spent it.
	drop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	}))
	defer drop.Close()
	e.TokenURL = drop.URL
	_, err = exchange(t, e, GrantRefreshToken, "rt1")
	if !errors.As(err, &pe) || pe.Class != Lost {
		t.Fatalf("dropped connection: err = %#v (%v), want class lost", err, err)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"": 0, "7": 7 * time.Second, "-3": 0, "99999": time.Hour, "junk": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
	} {
		if got := retryAfter(in, now); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}
