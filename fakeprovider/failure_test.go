package fakeprovider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestFailModes(t *testing.T) {
	bothTransports(t, func(t *testing.T, tlsOn bool) {
		s, c := start(t, Options{TLS: tlsOn})
		tokenURL := s.URL() + PathOAuth2Token
		cc := ccForm(testClientID, testClientSecret)
		post := func(t *testing.T) response { return postForm(t, c, tokenURL, cc) }

		for _, tc := range []struct {
			mode   FailMode
			send   func(t *testing.T) response
			status int
			check  func(t *testing.T, r response)
		}{
			{Fail500, post, 500, func(t *testing.T, r response) {
				wantContentType(t, r, "application/json")
				wantFields(t, r, map[string]any{"error": "server_error"})
			}},
			{Fail503HTML, func(t *testing.T) response { return mint(t, c, s, APIVideo) }, 503, func(t *testing.T, r response) {
				wantContentType(t, r, "text/html")
				if !strings.Contains(string(r.body), "<html>") {
					t.Errorf("body: got %s, want an HTML page", r.body)
				}
			}},
			{FailHTML200, func(t *testing.T) response { return mint(t, c, s, Echo360) }, 200, func(t *testing.T, r response) {
				wantContentType(t, r, "text/html")
				if !strings.Contains(string(r.body), "password") {
					t.Errorf("body: got %s, want a login page", r.body)
				}
			}},
			{Fail429, post, 429, func(t *testing.T, r response) {
				if got := r.header.Get("Retry-After"); got != "2" {
					t.Errorf("Retry-After: got %q, want 2", got)
				}
			}},
			{FailNoAccessToken, post, 200, func(t *testing.T, r response) {
				wantFields(t, r, map[string]any{"access_token": nil})
			}},
			{FailHugeBody, post, 200, func(t *testing.T, r response) {
				if len(r.body) != HugeBodySize || !json.Valid(r.body) {
					t.Errorf("body: got %d bytes (valid JSON %v), want %d bytes of valid JSON", len(r.body), json.Valid(r.body), HugeBodySize)
				}
			}},
			{FailWrongTypes, post, 200, func(t *testing.T, r response) {
				m := r.json(t)
				if _, isNum := m["access_token"].(float64); !isNum {
					t.Errorf("access_token: got %T, want a number", m["access_token"])
				}
				if _, isObj := m["expires_in"].(map[string]any); !isObj {
					t.Errorf("expires_in: got %T, want an object", m["expires_in"])
				}
			}},
		} {
			t.Run(tc.mode.String(), func(t *testing.T) {
				s.Fail(1, tc.mode)
				r := tc.send(t)
				wantStatus(t, r, tc.status)
				tc.check(t, r)
				wantStatus(t, post(t), http.StatusOK) // one failure only
			})
		}

		t.Run("FailDropAfterConsume", func(t *testing.T) {
			s.Reset()
			rt := mint(t, c, s, Echo360).str(t, "refresh_token")
			s.Fail(1, FailDropAfterConsume)
			form := url.Values{"grant_type": {"refresh_token"}, "client_id": {testClientID}, "refresh_token": {rt}}
			if resp, err := c.PostForm(s.URL()+PathEcho360Token, form); err == nil {
				resp.Body.Close()
				t.Fatalf("dropped connection: got a response (%d), want none", resp.StatusCode)
			}
			// The refresh happened: the token is spent and new ones were issued.
			wantCounts(t, s, counts{ClientCredentials: 1, RefreshToken: 1})
			wantOAuthError(t, refresh(t, c, s, Echo360, rt), 400, "invalid_grant")
			wantCounts(t, s, counts{ClientCredentials: 1, RefreshToken: 1, Reuses: 1})
		})

		t.Run("FailTimeout", func(t *testing.T) {
			s.Fail(1, FailTimeout)
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(cc.Encode()))
			req.Header.Set("Content-Type", contentTypeForm)
			began := time.Now()
			resp, err := c.Do(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("hanging server: got a response (%d), want none", resp.StatusCode)
			}
			if elapsed := time.Since(began); !errors.Is(err, context.DeadlineExceeded) || elapsed > time.Second {
				t.Errorf("got %v after %v, want the client's deadline after about 200ms", err, elapsed)
			}
			wantStatus(t, post(t), http.StatusOK)
		})

		t.Run("FailEchoSecret", func(t *testing.T) {
			s.Fail(3, FailEchoSecret)
			r := post(t)
			wantStatus(t, r, 400)
			for _, k := range []string{"error_description", "title", "message"} {
				if v := r.str(t, k); !strings.Contains(v, testClientSecret) {
					t.Errorf("%s: got %q, want the client secret echoed", k, v)
				}
			}
			if r := mint(t, c, s, APIVideo); !strings.Contains(r.str(t, "title"), testAPIKey) {
				t.Errorf("title: got %s, want the API key echoed", r.body)
			}
			r = postForm(t, c, tokenURL, url.Values{"grant_type": {"client_credentials"}}, withBasic(testClientID, testClientSecret))
			if !strings.Contains(r.str(t, "error_description"), testClientSecret) {
				t.Errorf("error_description: got %s, want the Basic password echoed", r.body)
			}
			wantStatus(t, post(t), http.StatusOK)
		})
	})
}

func TestFailQueue(t *testing.T) {
	s, c := start(t, Options{})
	statuses := func(n int) string {
		var got []int
		for range n {
			got = append(got, mint(t, c, s, OAuth2).status)
		}
		return fmt.Sprint(got)
	}

	t.Run("runs queue up in order", func(t *testing.T) {
		s.Fail(1, Fail500)
		s.Fail(2, Fail429)
		if got, want := statuses(4), "[500 429 429 200]"; got != want {
			t.Errorf("statuses: got %s, want %s", got, want)
		}
	})
	t.Run("ClearFailures cancels pending failures", func(t *testing.T) {
		s.Fail(3, Fail500)
		s.ClearFailures()
		if got, want := statuses(1), "[200]"; got != want {
			t.Errorf("statuses: got %s, want %s", got, want)
		}
	})
	t.Run("any token endpoint takes the next failure", func(t *testing.T) {
		s.Fail(1, Fail500)
		wantStatus(t, refresh(t, c, s, APIVideo, "x"), 500)
	})
	t.Run("n must be at least 1", func(t *testing.T) {
		for _, n := range []int{0, -1} {
			wantPanic(t, "use ClearFailures", func() { s.Fail(n, Fail500) })
		}
		if got, want := statuses(1), "[200]"; got != want {
			t.Errorf("statuses after a refused Fail: got %s, want %s", got, want)
		}
	})
	t.Run("String", func(t *testing.T) {
		for mode, want := range map[FailMode]string{FailWrongTypes: "FailWrongTypes", FailMode(99): "FailMode(99)"} {
			if got := mode.String(); got != want {
				t.Errorf("String: got %q, want %q", got, want)
			}
		}
	})
}
