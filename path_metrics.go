package tokenbroker

import (
	"bytes"
	"context"
	"fmt"
	"net/http"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// metricsContentType is the Prometheus text exposition format, version 0.0.4.
const metricsContentType = "text/plain; version=0.0.4; charset=utf-8"

func pathMetrics(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern:      "metrics$",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "tokenbroker", OperationSuffix: "metrics"},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback: b.pathMetricsRead,
				Summary:  "Prometheus metrics of this mount on this node, in the text exposition format.",
			},
		},
		HelpSynopsis:    "Prometheus metrics (text exposition format).",
		HelpDescription: metricsHelp,
	}}
}

const metricsHelp = `
Returns the mount's metrics as this node sees them, in the Prometheus text
exposition format (not JSON): provider requests by outcome and error, creds
reads by result, token expiry times, chains that need an operator, background
refreshes and failed state writes. Scrape it with a Vault token whose policy
grants read on this path. With more names than the metrics_max_names setting,
series carry no name label and are summed over names. While the mount starts
(or the plugin reloads) and loads its names, a scrape reports those loaded so far.
`

func (b *backend) pathMetricsRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	body, err := b.exposition(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{
		logical.HTTPContentType: metricsContentType,
		logical.HTTPRawBody:     body,
		logical.HTTPStatusCode:  http.StatusOK,
	}}, nil
}

// exposition gathers every series and encodes them as Prometheus text.
func (b *backend) exposition(ctx context.Context, s logical.Storage) ([]byte, error) {
	set, err := b.mountSettings(ctx, s)
	if err != nil {
		return nil, err
	}
	names, err := b.names.page(ctx, s, "", 0)
	if err != nil {
		return nil, err
	}
	scrape := prometheus.NewRegistry()
	scrape.MustRegister(&nameCollector{b: b, ctx: ctx, storage: s, names: names, perName: len(names) <= set.MetricsMaxNames,
		loadedOnly: b.loop.loading()})
	// The two registries hold different families, so their texts are
	// concatenated (prometheus.Gatherers would check every series twice).
	var buf bytes.Buffer
	for _, g := range []prometheus.Gatherer{b.metrics.registry, scrape} {
		families, err := g.Gather()
		if err != nil {
			return nil, fmt.Errorf("gather metrics: %w", err)
		}
		for _, f := range families {
			if _, err := expfmt.MetricFamilyToText(&buf, f); err != nil {
				return nil, fmt.Errorf("encode metrics: %w", err)
			}
		}
	}
	return buf.Bytes(), nil
}
