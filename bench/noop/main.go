// Command noop is the floor for the cached-read benchmark (bench/run.sh): an
// external Vault secrets plugin, served exactly like tokenbroker
// (plugin.ServeMultiplex, sdk framework), whose only path noop/<name> answers
// a read with a constant map from memory, of the same shape and size as a
// tokenbroker creds response. Whatever a read of it costs is the price of the
// gRPC hop to an external plugin, which no plugin can go below.
//
// It is a benchmark fixture, not a product: it is never registered outside
// `make bench`.
package main

import (
	"context"
	"maps"
	"os"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/plugin"
)

// constData has the fields and sizes of a creds response for a 1 h token
// ("at_" + 43 base64url characters, as the fake provider issues).
var constData = map[string]any{
	"access_token":       "at_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG",
	"token_type":         "Bearer",
	"expires_at":         "2026-11-25T13:00:00Z",
	"expires_at_seconds": int64(1795611600),
	"rotation_period":    int64(3600),
	"ttl":                int64(3300),
}

func factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	b := &framework.Backend{
		Help:        "A no-op secrets engine: the floor of an external plugin read (benchmarks only).",
		BackendType: logical.TypeLogical,
		Paths: []*framework.Path{{
			Pattern: "noop/" + framework.GenericNameRegex("name"),
			Fields: map[string]*framework.FieldSchema{
				"name": {Type: framework.TypeString, Description: "Ignored."},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback: func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
						// A copy, as a real handler builds its map per request;
						// six entries cost well under a microsecond.
						return &logical.Response{Data: maps.Clone(constData)}, nil
					},
					Summary: "Return a constant creds-shaped map.",
				},
			},
		}},
		RunningVersion: "v0.0.0-bench",
	}
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}

func main() {
	meta := &api.PluginAPIClientMeta{}
	if err := meta.FlagSet().Parse(os.Args[1:]); err != nil {
		fatal(err)
	}
	if err := plugin.ServeMultiplex(&plugin.ServeOpts{
		BackendFactoryFunc: factory,
		TLSProviderFunc:    api.VaultPluginTLSProvider(meta.GetTLSConfig()),
	}); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	hclog.New(&hclog.LoggerOptions{}).Error("noop plugin shutting down", "error", err)
	os.Exit(1)
}
