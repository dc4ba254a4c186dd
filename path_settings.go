package tokenbroker

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathSettings(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern:      "settings$",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "tokenbroker", OperationSuffix: "settings"},
		Fields: map[string]*framework.FieldSchema{
			"metrics_max_names": {Type: framework.TypeInt, Default: defaultMetricsMaxNames,
				Description: "With more configured names than this, metrics/ drops the name label and serves aggregate series only, so the number of series stays bounded. 0: always aggregate."},
			"rate_limit": {Type: framework.TypeFloat, Default: 0,
				Description: "Most provider calls a second to each token-URL host, shared by background refreshes and waiting reads. 0: no cap. A 429 or 503 with Retry-After also holds the host back for every name."},
			"rate_limit_burst": {Type: framework.TypeInt, Default: 0,
				Description: "Calls allowed at once above rate_limit. 0: the rate, rounded up."},
			"webhook_url": {Type: framework.TypeString,
				Description: "Where the mount POSTs signed events about connections (Standard Webhooks): https://, or http:// to a loopback host. \"\" turns webhooks off."},
			"webhook_secret": {Type: framework.TypeString, DisplayAttrs: sensitive,
				Description: "The signing secret, " + webhookSecretFormatDescription + ". Write-only: a read shows webhook_secret_set."},
			"webhook_events": {Type: framework.TypeCommaStringSlice,
				Description: "Event types sent (list, or a comma-separated string); default all: " + strings.Join(webhookEventTypes, ", ") + "."},
			"webhook_outbox_max": {Type: framework.TypeInt, Default: defaultWebhookOutboxMax,
				Description: "Most undelivered events kept; past it the oldest are dropped (counted, and logged). 1 to 1000000."},
			"webhook_failing_after": {Type: framework.TypeInt, Default: defaultWebhookFailingAfter,
				Description: "Consecutive failed renewals, while the cached token still serves, that send connection.failing. At least 1."},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation:   &framework.PathOperation{Callback: b.pathSettingsRead, Summary: "Read the mount-wide settings."},
			logical.UpdateOperation: &framework.PathOperation{Callback: b.pathSettingsWrite, Summary: "Change mount-wide settings; fields not given keep their values."},
		},
		HelpSynopsis:    "Mount-wide settings (operators only).",
		HelpDescription: settingsHelp,
	}}
}

const settingsHelp = `
Settings that apply to every name of the mount. A write changes only the
fields it names; a read returns every field, defaults included.
metrics_max_names bounds the per-name series of metrics/. rate_limit and
rate_limit_burst cap provider calls to each token-URL host. webhook_url,
webhook_secret and webhook_events tell the app, by signed webhooks, when a
user's connection is made, lost, failing or deleted (webhooks/status shows
the outbox).
`

func (b *backend) pathSettingsRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	set, err := b.mountSettings(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: set.data()}, nil
}

func (b *backend) pathSettingsWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.settingsMu.Lock()
	defer b.settingsMu.Unlock()
	cur, err := loadSettings(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	next := *cur
	if err := next.apply(d); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	if err := settingsEntries.save(ctx, req.Storage, "", &next); err != nil {
		return nil, err
	}
	b.loadedSettings.Store(next.withoutSecret())
	if next.webhooksOn() {
		b.hooks.wakeUp() // a new URL or secret: pending events go now
	}
	return &logical.Response{Data: next.data()}, nil
}

// apply sets the fields present in d and checks the result.
func (s *mountSettings) apply(d *framework.FieldData) error {
	for key, dst := range map[string]*int{"metrics_max_names": &s.MetricsMaxNames, "rate_limit_burst": &s.RateLimitBurst} {
		if v, ok, err := field[int](d, key); err != nil {
			return err
		} else if ok {
			*dst = v
		}
	}
	if v, ok, err := field[float64](d, "rate_limit"); err != nil {
		return err
	} else if ok {
		s.RateLimit = v
	}
	if err := s.webhookSettings.apply(d); err != nil {
		return err
	}
	return s.validate()
}

// apply sets the webhook fields present in d.
func (w *webhookSettings) apply(d *framework.FieldData) error {
	if v, ok, err := field[string](d, "webhook_secret"); err != nil {
		return err
	} else if ok {
		w.WebhookSecret = strings.TrimSpace(v)
	}
	if v, ok, err := field[string](d, "webhook_url"); err != nil {
		return err
	} else if ok {
		w.WebhookURL = strings.TrimSpace(v)
		if w.WebhookURL == "" {
			w.WebhookSecret = "" // off: the secret goes too, so turning on again needs one
		}
	}
	if v, ok, err := field[[]string](d, "webhook_events"); err != nil {
		return err
	} else if ok {
		w.WebhookEvents = cleanList(v)
		if w.WebhookEvents == nil {
			w.WebhookEvents = []string{}
		}
		if slices.Equal(w.WebhookEvents, webhookEventTypes) {
			w.WebhookEvents = nil
		}
	}
	for _, f := range []struct {
		key      string
		dst      *int
		min, max int
	}{
		{"webhook_outbox_max", &w.WebhookOutboxMax, 1, maxWebhookOutboxMax},
		{"webhook_failing_after", &w.WebhookFailingAfter, 1, maxWebhookFailingAfter},
	} {
		if v, ok, err := field[int](d, f.key); err != nil {
			return err
		} else if ok {
			if v < f.min || v > f.max {
				return fmt.Errorf("%s must be between %d and %d", f.key, f.min, f.max)
			}
			*f.dst = v
		}
	}
	return nil
}

// data is the settings as a response shows them.
func (s *mountSettings) data() map[string]any {
	return map[string]any{"metrics_max_names": s.MetricsMaxNames, "rate_limit": s.RateLimit, "rate_limit_burst": s.RateLimitBurst,
		"webhook_url": s.WebhookURL, "webhook_secret_set": s.WebhookSecret != "" || s.webhookSecretSet, "webhook_events": s.events(),
		"webhook_outbox_max": s.outboxMax(), "webhook_failing_after": s.failingAfter()}
}
