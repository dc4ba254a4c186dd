package tokenbroker

import (
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// settingsKey is the storage entry of the mount-wide settings (seal-wrapped
// like config/ and token/).
const settingsKey = "settings"

// Defaults and bounds of the settings fields.
const (
	defaultMetricsMaxNames = 2000
	maxMetricsMaxNames     = 1_000_000
	maxRateLimit           = 100_000 // requests a second to one host
)

// mountSettings are the mount-wide settings. Each field starts at its default
// and a stored entry overrides only the fields it holds, so a field is added
// at a time: give it a default in defaultSettings, a bound in validate, and a
// row in settingsFields (path_settings.go).
type mountSettings struct {
	// MetricsMaxNames: with more configured names than this, the metrics drop
	// the name label and serve aggregate series only (0: always aggregate).
	MetricsMaxNames int `json:"metrics_max_names"`
	// RateLimit caps provider calls to each token-URL host, in requests a
	// second (0: no cap), with bursts of up to RateLimitBurst (0: the rate,
	// rounded up). The background and waiting reads share the budget.
	RateLimit      float64 `json:"rate_limit,omitempty"`
	RateLimitBurst int     `json:"rate_limit_burst,omitempty"`
	webhookSettings
}

// burst is the rate limiter's burst in force.
func (s *mountSettings) burst() int {
	if s.RateLimitBurst > 0 {
		return s.RateLimitBurst
	}
	return max(1, int(math.Ceil(s.RateLimit)))
}

func defaultSettings() *mountSettings {
	return &mountSettings{MetricsMaxNames: defaultMetricsMaxNames}
}

func (s *mountSettings) validate() error {
	if err := s.webhookSettings.validate(); err != nil {
		return err
	}
	if s.MetricsMaxNames < 0 || s.MetricsMaxNames > maxMetricsMaxNames {
		return fmt.Errorf("metrics_max_names must be between 0 and %d", maxMetricsMaxNames)
	}
	if s.RateLimit < 0 || s.RateLimit > maxRateLimit || math.IsNaN(s.RateLimit) {
		return fmt.Errorf("rate_limit must be between 0 (no cap) and %d requests a second", maxRateLimit)
	}
	if s.RateLimitBurst < 0 || s.RateLimitBurst > maxRateLimit {
		return fmt.Errorf("rate_limit_burst must be between 0 (the rate) and %d", maxRateLimit)
	}
	return nil
}

// mountSettings returns the mount's settings, loading them from storage on first
// use (and after an invalidation), without the webhook secret (loadSettings
// has it). Callers must not change the result.
func (b *backend) mountSettings(ctx context.Context, s logical.Storage) (*mountSettings, error) {
	if cur := b.loadedSettings.Load(); cur != nil {
		return cur, nil
	}
	epoch := b.invalidations.Load()
	loaded, err := loadSettings(ctx, s)
	if err != nil {
		return nil, err
	}
	loaded = loaded.withoutSecret() // memory holds what reads need: the worker reads the secret from storage
	if b.invalidations.Load() == epoch {
		b.loadedSettings.CompareAndSwap(nil, loaded)
	}
	return loaded, nil
}

// loadSettings reads the mount's settings over the defaults.
func loadSettings(ctx context.Context, s logical.Storage) (*mountSettings, error) {
	out := defaultSettings()
	if _, err := settingsEntries.loadInto(ctx, s, "", out); err != nil {
		return nil, err
	}
	return out, nil
}

// Webhook defaults and bounds (webhook.go).
const (
	defaultWebhookOutboxMax    = 10_000
	maxWebhookOutboxMax        = 1_000_000
	defaultWebhookFailingAfter = 3
	maxWebhookFailingAfter     = 1000
	// A Standard Webhooks secret is whsec_ and the base64 of 24 to 64 random bytes.
	webhookSecretPrefix            = "whsec_"
	minWebhookKey, maxWebhookKey   = 24, 64
	webhookSecretFormatDescription = "whsec_ followed by the base64 of 24 to 64 random bytes (the Standard Webhooks form; e.g. \"whsec_\" + `openssl rand -base64 32`)"
)

// webhookSettings say where and what the mount tells the app (webhook.go).
// Zero values mean the defaults, so a stored entry holds only what an
// operator set.
type webhookSettings struct {
	WebhookURL string `json:"webhook_url,omitempty"`
	// WebhookSecret signs every delivery; write-only. mountSettings (the
	// copy kept in memory) holds it empty and webhookSecretSet instead.
	WebhookSecret    string   `json:"webhook_secret,omitempty"`
	webhookSecretSet bool     // in memory: WebhookSecret is set in storage
	WebhookEvents    []string `json:"webhook_events,omitempty"` // nil: every event type
	// WebhookOutboxMax bounds the outbox (0: the default); past it the
	// oldest events are dropped.
	WebhookOutboxMax int `json:"webhook_outbox_max,omitempty"`
	// WebhookFailingAfter: consecutive failed renewals that make a
	// connection.failing event (0: the default).
	WebhookFailingAfter int `json:"webhook_failing_after,omitempty"`
}

func (w *webhookSettings) validate() error {
	if w.WebhookURL != "" {
		if err := provider.CheckURL(w.WebhookURL); err != nil {
			return fmt.Errorf("webhook_url: %w", err)
		}
		if w.WebhookSecret == "" && !w.webhookSecretSet {
			return fmt.Errorf("webhook_url needs webhook_secret: %s", webhookSecretFormatDescription)
		}
	}
	if w.WebhookSecret != "" {
		if _, err := webhookKey(w.WebhookSecret); err != nil {
			return err
		}
	}
	for _, t := range w.WebhookEvents {
		if !slices.Contains(webhookEventTypes, t) {
			return fmt.Errorf("webhook_events: unknown event type %q (want some of %s)", t, strings.Join(webhookEventTypes, ", "))
		}
	}
	if w.WebhookEvents != nil && len(w.WebhookEvents) == 0 {
		return fmt.Errorf("webhook_events: name at least one event type (%s); to send none, set webhook_url to \"\"", strings.Join(webhookEventTypes, ", "))
	}
	if w.WebhookOutboxMax < 0 || w.WebhookOutboxMax > maxWebhookOutboxMax {
		return fmt.Errorf("webhook_outbox_max must be between 1 and %d", maxWebhookOutboxMax)
	}
	if w.WebhookFailingAfter < 0 || w.WebhookFailingAfter > maxWebhookFailingAfter {
		return fmt.Errorf("webhook_failing_after must be between 1 and %d", maxWebhookFailingAfter)
	}
	return nil
}

// webhookKey is the HMAC key of a Standard Webhooks secret.
func webhookKey(secret string) ([]byte, error) {
	b64, ok := strings.CutPrefix(secret, webhookSecretPrefix)
	key, err := base64.StdEncoding.DecodeString(b64)
	if !ok || err != nil || len(key) < minWebhookKey || len(key) > maxWebhookKey {
		// The error never quotes the secret.
		return nil, fmt.Errorf("webhook_secret must be %s", webhookSecretFormatDescription)
	}
	return key, nil
}

// withoutSecret is s as memory keeps it: the webhook secret replaced by
// whether one is set.
func (s *mountSettings) withoutSecret() *mountSettings {
	out := *s
	out.webhookSecretSet = s.WebhookSecret != "" || s.webhookSecretSet
	out.WebhookSecret = ""
	return &out
}

// webhooksOn reports whether events are recorded at all.
func (w *webhookSettings) webhooksOn() bool { return w.WebhookURL != "" }

// webhookWants reports whether events of type t are recorded.
func (w *webhookSettings) webhookWants(t string) bool {
	return w.webhooksOn() && (w.WebhookEvents == nil || slices.Contains(w.WebhookEvents, t))
}

func (w *webhookSettings) outboxMax() int {
	if w.WebhookOutboxMax == 0 {
		return defaultWebhookOutboxMax
	}
	return w.WebhookOutboxMax
}

func (w *webhookSettings) failingAfter() int {
	if w.WebhookFailingAfter == 0 {
		return defaultWebhookFailingAfter
	}
	return w.WebhookFailingAfter
}

// events is the event types sent.
func (w *webhookSettings) events() []string {
	if w.WebhookEvents == nil {
		return slices.Clone(webhookEventTypes)
	}
	return slices.Clone(w.WebhookEvents)
}
