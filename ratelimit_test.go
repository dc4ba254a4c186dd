package tokenbroker

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

func TestHostLimits(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ctx := context.Background()

	t.Run("no limit by default", func(t *testing.T) {
		h := newHostLimits()
		for i := range 1000 {
			if err := h.wait(ctx, "idp.example", now); err != nil {
				t.Fatalf("call %d: %v, want no wait", i, err)
			}
		}
	})
	t.Run("rate and burst per host", func(t *testing.T) {
		h := newHostLimits()
		h.configure(1, 3)
		for i := range 3 {
			if err := h.wait(ctx, "a.example", now); err != nil {
				t.Fatalf("burst call %d: %v", i, err)
			}
		}
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if err := h.wait(short, "a.example", now); err == nil {
			t.Fatalf("fourth call within 50ms at 1/s with burst 3 went through; want it held back")
		}
		if err := h.wait(ctx, "b.example", now); err != nil {
			t.Fatalf("another host: %v, want its own budget", err)
		}
	})
	t.Run("Retry-After pauses the host for everyone", func(t *testing.T) {
		h := newHostLimits()
		h.pause("a.example", now.Add(time.Minute))
		err := h.wait(ctx, "a.example", now.Add(30*time.Second))
		var pe *provider.Error
		if !errors.As(err, &pe) || pe.Class != provider.Temporary {
			t.Fatalf("call during the pause: err = %v, want a temporary *provider.Error", err)
		}
		if err := h.wait(ctx, "a.example", now.Add(2*time.Minute)); err != nil {
			t.Fatalf("call after the pause: %v", err)
		}
		if err := h.wait(ctx, "b.example", now.Add(30*time.Second)); err != nil {
			t.Fatalf("another host during the pause: %v", err)
		}
	})
}

func TestHostOf(t *testing.T) {
	for in, want := range map[string]string{
		"https://IDP.example/oauth2/token": "idp.example",
		"http://127.0.0.1:8443/t":          "127.0.0.1:8443",
		"::not a url":                      "",
	} {
		if got := hostOf(in); got != want {
			t.Errorf("hostOf(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRetryAfterHoldsTheHostBackForEveryName: a 429 with Retry-After for one
// name keeps every name of that host from calling it until the time passes.
func TestRetryAfterHoldsTheHostBackForEveryName(t *testing.T) {
	e := newEnv(t)
	e.config("a", fakeprovider.OAuth2, nil)
	e.config("b", fakeprovider.OAuth2, nil)
	e.fake.Fail(1, fakeprovider.Fail429) // Retry-After: 2
	_, err := e.creds("a", nil)
	expectErr(t, "read answered 429", err, "HTTP 429")
	calls := e.fake.TotalCalls()
	_, err = e.creds("b", nil)
	expectErr(t, "another name of the same host during Retry-After", err, "Retry-After")
	expect(t, "calls during Retry-After", e.fake.TotalCalls()-calls, 0)
	e.clock.Add(3 * time.Second)
	expect(t, "token after Retry-After", e.fake.Valid(e.token("b")), true)
}

// TestRateLimitSetting: rate_limit and rate_limit_burst are settings; the
// provider calls of every name share the host's budget.
func TestRateLimitSetting(t *testing.T) {
	e := newEnv(t)
	e.mustDo(logical.UpdateOperation, "settings", map[string]any{"rate_limit": 5, "rate_limit_burst": 2})
	got := e.mustDo(logical.ReadOperation, "settings", nil).Data
	expectField(t, got, "rate_limit", 5.0)
	expectField(t, got, "rate_limit_burst", 2)
	for _, bad := range []map[string]any{{"rate_limit": -1}, {"rate_limit": maxRateLimit + 1}, {"rate_limit_burst": -3}} {
		_, err := e.do(logical.UpdateOperation, "settings", bad)
		expectErr(t, fmt.Sprint(bad), err, "must be between")
	}
	for i := range 4 {
		e.config(fmt.Sprintf("n%d", i), fakeprovider.OAuth2, nil)
	}
	start := time.Now()
	for i := range 4 {
		e.token(fmt.Sprintf("n%d", i))
	}
	// A burst of 2, then 5 a second: the 3rd and 4th calls wait ~200 ms each.
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Fatalf("4 mints at 5/s with a burst of 2 took %s, want at least 300ms", took)
	}
}

func TestShortRetryAfterIsWaitedOut(t *testing.T) {
	h := newHostLimits()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h.pause("a.example", now.Add(300*time.Millisecond))
	start := time.Now()
	if err := h.wait(context.Background(), "a.example", now); err != nil {
		t.Fatalf("a 300ms pause: err = %v, want it waited out", err)
	}
	if took := time.Since(start); took < 250*time.Millisecond {
		t.Fatalf("a 300ms pause was waited out in %s, want about 300ms", took)
	}
}
