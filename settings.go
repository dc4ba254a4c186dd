package tokenbroker

import (
	"context"
	"fmt"
	"math"

	"github.com/hashicorp/vault/sdk/logical"
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
// use (and after an invalidation). Callers must not change the result.
func (b *backend) mountSettings(ctx context.Context, s logical.Storage) (*mountSettings, error) {
	if cur := b.loadedSettings.Load(); cur != nil {
		return cur, nil
	}
	epoch := b.invalidations.Load()
	loaded, err := loadSettings(ctx, s)
	if err != nil {
		return nil, err
	}
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
