package fakeprovider

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLifetime(t *testing.T) {
	s, c := start(t, Options{Lifetime: 90 * time.Second})
	for _, tc := range []struct {
		name     string
		lifetime time.Duration // 0: Options.Lifetime
		d        Dialect
		want     any
	}{
		{"Options.Lifetime/oauth2", 0, OAuth2, 90.0},
		{"Options.Lifetime/oauth2_json", 0, OAuth2JSON, 90.0},
		{"Options.Lifetime/echo360", 0, Echo360, 90.0},
		{"Options.Lifetime/apivideo", 0, APIVideo, 90.0},
		{"Options.Lifetime/endorsed, as a string", 0, Endorsed, "90"},
		{"documented default/endorsed", -1, Endorsed, "1209600"},
		{"documented default/echo360", -1, Echo360, 3600.0},
		{"whole seconds, at least 1", 1500 * time.Millisecond, OAuth2, 1.0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.lifetime != 0 {
				s.SetLifetime(tc.lifetime)
				defer s.SetLifetime(90 * time.Second)
			}
			r := mint(t, c, s, tc.d)
			wantStatus(t, r, http.StatusOK)
			wantFields(t, r, map[string]any{"expires_in": tc.want})
		})
	}
}

func TestExpiryWithInjectedClock(t *testing.T) {
	clock := newClock()
	s, c := start(t, Options{Now: clock.Now, Lifetime: time.Minute})
	r := mint(t, c, s, Echo360)
	wantStatus(t, r, http.StatusOK)
	at, rt := r.str(t, "access_token"), r.str(t, "refresh_token")

	clock.Advance(59 * time.Second)
	if !s.Valid(at) {
		t.Fatalf("Valid 1s before expiry: got false, want true")
	}
	w := whoami(t, c, s, at)
	if w.status != http.StatusOK {
		t.Fatalf("whoami 1s before expiry: got %d %s, want 200", w.status, w.body)
	}
	wantFields(t, w, map[string]any{"expires_in": 1.0})

	clock.Advance(time.Second)
	if s.Valid(at) {
		t.Fatalf("Valid at expiry: got true, want false")
	}
	if w := whoami(t, c, s, at); w.status != http.StatusUnauthorized {
		t.Errorf("whoami at expiry: got %d, want 401", w.status)
	}

	// Echo360 refresh tokens never expire.
	clock.Advance(365 * 24 * time.Hour)
	r = refresh(t, c, s, Echo360, rt)
	wantStatus(t, r, http.StatusOK)
	if !s.Valid(r.str(t, "access_token")) {
		t.Errorf("Valid(new token): got false, want true")
	}
}

func TestWhoami(t *testing.T) {
	s, c := start(t, Options{})
	r := mint(t, c, s, OAuth2)
	at := r.str(t, "access_token")
	for _, tc := range []struct {
		name, method, authz string
		status              int
	}{
		{"valid token", http.MethodGet, "Bearer " + at, 200},
		{"lower-case scheme", http.MethodGet, "bearer " + at, 200},
		{"no header", http.MethodGet, "", 401},
		{"unknown token", http.MethodGet, "Bearer at_nope", 401},
		{"refresh token", http.MethodGet, "Bearer " + r.str(t, "refresh_token"), 401},
		{"Basic scheme", http.MethodGet, "Basic " + at, 401},
		{"POST", http.MethodPost, "Bearer " + at, 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []reqOpt
			if tc.authz != "" {
				opts = append(opts, withHeader("Authorization", tc.authz))
			}
			w := send(t, c, tc.method, s.URL()+PathWhoami, "", "", opts...)
			if w.status != tc.status {
				t.Fatalf("status: got %d (%s), want %d", w.status, w.body, tc.status)
			}
			if got := w.header.Get("WWW-Authenticate"); tc.status == 401 && !strings.HasPrefix(got, "Bearer") {
				t.Errorf("WWW-Authenticate: got %q, want a Bearer challenge", got)
			}
		})
	}
	t.Run("not a token endpoint: no failure injection, not in TotalCalls", func(t *testing.T) {
		s.Fail(1, Fail500)
		defer s.ClearFailures()
		if w := whoami(t, c, s, at); w.status != 200 {
			t.Errorf("whoami with a failure queued: got %d, want 200", w.status)
		}
		got := fmt.Sprint(s.TotalCalls(), s.Calls(PathWhoami))
		if want := "1 8"; got != want {
			t.Errorf("TotalCalls, Calls(whoami): got %s, want %s", got, want)
		}
	})
}

// fakeClock is an injectable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestSetAccessTokenSize(t *testing.T) {
	s := New(Options{})
	t.Cleanup(func() { s.SetAccessTokenSize(0) })
	if at := s.newAccessToken(); !strings.HasPrefix(at, "at_") {
		t.Fatalf("default token %q: want the at_ form", at)
	}
	for _, n := range []int{1500, 1501, 1502, 1503, 2048, 120} {
		s.SetAccessTokenSize(n)
		at := s.newAccessToken()
		parts := strings.Split(at, ".")
		if len(at) != n || len(parts) != 3 || parts[0] != jwtHeader {
			t.Fatalf("size %d: got %d bytes, %d parts", n, len(at), len(parts))
		}
		for _, p := range parts {
			if _, err := base64.RawURLEncoding.DecodeString(p); err != nil {
				t.Fatalf("size %d: part %q is not base64url: %v", n, p, err)
			}
		}
		if at == s.newAccessToken() {
			t.Fatalf("size %d: two tokens alike", n)
		}
	}
	s.SetAccessTokenSize(0)
	if at := s.newAccessToken(); !strings.HasPrefix(at, "at_") {
		t.Fatalf("after reset: %q", at)
	}
}
