package tokenbroker

import (
	"context"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathWebhooks(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern:      "webhooks/status$",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "tokenbroker", OperationSuffix: "webhooks-status"},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{Callback: b.pathWebhooksStatus, Summary: "Read the webhook outbox and delivery status."},
		},
		HelpSynopsis: "The webhook outbox: depth, oldest event, deliveries and the last error (operators only).",
		HelpDescription: `
enabled and url are the settings'. depth and oldest_event_at are read from
storage; delivered, failed_attempts, dropped, last_error, last_error_at and
last_delivered_at count since the plugin started on this node (deliveries
run on the active node).
`,
	}}
}

func (b *backend) pathWebhooksStatus(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	set, err := b.mountSettings(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	keys, err := outboxKeys(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	h := b.hooks
	data := map[string]any{
		"enabled":                  set.webhooksOn(),
		"url":                      set.WebhookURL,
		"depth":                    len(keys),
		"oldest_event_at":          "",
		"oldest_event_age_seconds": int64(0),
		"delivered":                h.delivered.Load(),
		"failed_attempts":          h.failedAttempts.Load(),
		"dropped":                  h.dropped.Load(),
	}
	if len(keys) > 0 {
		ev, err := outboxEntries.load(ctx, req.Storage, keys[0])
		if err != nil {
			return nil, err
		}
		if ev != nil {
			data["oldest_event_at"] = ev.At.UTC().Format(time.RFC3339)
			data["oldest_event_age_seconds"] = int64(max(0, b.now().Sub(ev.At).Seconds()))
		}
	}
	h.stat.Lock()
	data["last_error"] = h.stat.lastError
	data["last_error_at"] = timeOrEmpty(h.stat.lastErrorAt)
	data["last_delivered_at"] = timeOrEmpty(h.stat.lastDeliveredAt)
	h.stat.Unlock()
	return &logical.Response{Data: data}, nil
}
