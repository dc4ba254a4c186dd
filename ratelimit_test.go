package tokenbroker

import (
	"context"
	"errors"
	"testing"
	"time"

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
