package tokenbroker

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// jwksPattern is the unauthenticated path of a name's public keys.
const jwksPattern = "jwks/"

func pathKeys(b *backend) []*framework.Path {
	name := &framework.FieldSchema{Type: framework.TypeString, Description: "Name of the config whose signing keys these are."}
	forward := func(cb framework.OperationFunc, summary string) framework.OperationHandler {
		return &framework.PathOperation{Callback: cb, Summary: summary, ForwardPerformanceStandby: true, ForwardPerformanceSecondary: true}
	}
	return []*framework.Path{{
		Pattern:      "key/(?P<name>[^/]+)/rotate$",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "tokenbroker", OperationVerb: "rotate", OperationSuffix: "key"},
		Fields: map[string]*framework.FieldSchema{
			"name": name, "generate_key": signingFields["generate_key"], "private_key": signingFields["private_key"],
			"certificate": signingFields["certificate"], "key_id": signingFields["key_id"],
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: forward(b.pathKeyRotate, "Add a next signing key (generated or imported), published at once; promote makes it current."),
		},
		HelpSynopsis:    "Add the next signing key of a name.",
		HelpDescription: rotateHelp,
	}, {
		Pattern:      "key/(?P<name>[^/]+)/promote$",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "tokenbroker", OperationVerb: "promote", OperationSuffix: "key"},
		Fields:       map[string]*framework.FieldSchema{"name": name},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: forward(b.pathKeyPromote, "Make the next signing key current; the previous one stays published for one assertion lifetime."),
		},
		HelpSynopsis:    "Make the next signing key current.",
		HelpDescription: rotateHelp,
	}, {
		Pattern:      "key/(?P<name>[^/]+)$",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "tokenbroker", OperationSuffix: "key"},
		Fields:       map[string]*framework.FieldSchema{"name": name},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{Callback: b.pathKeyRead, Summary: "Read the public part of a name's signing keys (never a private key)."},
		},
		HelpSynopsis:    "The public signing keys of a name: to register with the provider.",
		HelpDescription: keyHelp,
	}, {
		Pattern:      jwksPattern + "(?P<name>[^/]+)$",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "tokenbroker", OperationSuffix: "jwks"},
		Fields:       map[string]*framework.FieldSchema{"name": name},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{Callback: b.pathJWKSRead, Summary: "The name's public keys as a JWK Set (RFC 7517), without a Vault token."},
		},
		HelpSynopsis:    "A JWK Set of a name's public keys, for providers that fetch a client's keys.",
		HelpDescription: jwksHelp,
	}}
}

const keyHelp = `
Shows the public part of the signing key (config/<name>'s private_key or
generate_key): key_id (the kid header), algorithm, public_key_pem, jwk,
and certificate and x5t#S256 when a certificate is set; the same, prefixed
next_, for a next key added by key/<name>/rotate. No private key is shown.
`

const rotateHelp = `
Rotation without downtime: write key/<name>/rotate with generate_key (or
private_key, and certificate/key_id as needed) to add a next key. It is
published at once (key/<name> and jwks/<name>); register it at the provider.
It becomes current when key/<name>/promote is written, or by itself when the
provider refuses the current key and accepts the next. The previous key stays
published for one assertion_ttl after promotion.
`

const jwksHelp = `
Unauthenticated: public keys are public. Returns {"keys": [current, next]}
(and the previous key for one assertion_ttl after a promotion) as
application/json, so a provider that takes a client's JWKS URL fetches the
keys straight from Vault: https://<vault>/v1/<mount>/jwks/<name>.
`

// pathKeyRead shows the public part of name's keys.
func (b *backend) pathKeyRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := nameField(d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	cfg, err := loadSigningConfig(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	data := cfg.keyFacts(cfg.keys.signer(), "")
	if next := cfg.keys.pending(); next != nil {
		for k, v := range cfg.keyFacts(next, "next_") {
			data[k] = v
		}
	}
	if prev := cfg.keys.previous; prev != nil && b.now().Before(cfg.keys.previousUntil) {
		data["previous_key_id"], data["previous_published_until"] = prev.kid, timeOrEmpty(cfg.keys.previousUntil)
	}
	return &logical.Response{Data: data}, nil
}

// keyFacts are k's public facts, each key prefixed.
func (c *providerConfig) keyFacts(k *signingKey, prefix string) map[string]any {
	alg := c.endpointWith(k).SigningAlgorithm()
	data := map[string]any{
		"key_id": k.kid, "algorithm": alg, "key_type": keyType(k.signer.Public()), "generated": k.stored.Generated != "",
		"created_at": timeOrEmpty(k.stored.CreatedAt), "public_key_pem": k.publicPEM(), "jwk": k.jwk(alg),
	}
	if k.cert != nil {
		data["certificate"], data["x5t#S256"] = k.certificatePEM(), k.x5tS256()
	}
	out := make(map[string]any, len(data))
	for key, v := range data {
		out[prefix+key] = v
	}
	return out
}

// pathKeyRotate adds a next key.
func (b *backend) pathKeyRotate(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	return b.changeKeys(ctx, req, d, func(cfg *providerConfig, name string) (*keyRing, error) {
		str := func(key string) string { s, _ := d.Raw[key].(string); return strings.TrimSpace(s) }
		privatePEM, kind := str("private_key"), str("generate_key")
		if privatePEM == "" && kind == "" {
			return nil, fmt.Errorf("give generate_key or private_key: the next key")
		}
		k, err := cfg.makeKey(privatePEM, kind, str("key_id"), str("certificate"), name, b.now())
		if err != nil {
			return nil, err
		}
		if k.kid == cfg.keys.signer().kid {
			return nil, fmt.Errorf("key_id %q is the current key's: the next key needs its own", k.kid)
		}
		next := cfg.withKeys(cfg.keys.withNext(k))
		if ep := next.endpointWith(k); !slices.Contains(ep.AcceptedAlgorithms(), ep.SigningAlgorithm()) {
			return nil, fmt.Errorf("provider %s does not accept %s signatures (it takes %v)", cfg.Provider, ep.SigningAlgorithm(), ep.AcceptedAlgorithms())
		}
		b.refreshLog.Info("next signing key added", "name", name, "key_id", k.kid)
		return next.keys, nil
	})
}

// pathKeyPromote makes the next key current.
func (b *backend) pathKeyPromote(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	return b.changeKeys(ctx, req, d, func(cfg *providerConfig, name string) (*keyRing, error) {
		ring, err := cfg.keys.promoted(b.now(), cfg.endpoint().AssertionTTL())
		if err == nil {
			b.refreshLog.Info("next signing key promoted by an operator", "name", name, "key_id", ring.current.kid)
		}
		return ring, err
	})
}

// changeKeys applies change to name's keys under its lock, stores and
// publishes them, and answers with the key read.
func (b *backend) changeKeys(ctx context.Context, req *logical.Request, d *framework.FieldData,
	change func(cfg *providerConfig, name string) (*keyRing, error)) (*logical.Response, error) {
	name, err := nameField(d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	lock := b.lockFor(name)
	lock.Lock()
	defer lock.Unlock()
	cfg, err := loadSigningConfig(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	ring, err := change(cfg, name)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	if err := writeKeyRing(ctx, req.Storage, name, ring); err != nil {
		return nil, err
	}
	b.replaceKeys(name, cfg, ring)
	return b.pathKeyRead(ctx, req, d)
}

// pathJWKSRead serves the published public keys as a raw JWK Set. It needs
// no Vault token (PathsSpecial.Unauthenticated).
func (b *backend) pathJWKSRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := nameField(d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	cfg, err := loadSigningConfig(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	keys := []map[string]any{}
	for _, k := range cfg.keys.published(b.now()) {
		keys = append(keys, k.jwk(cfg.endpointWith(k).SigningAlgorithm()))
	}
	body, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		return nil, fmt.Errorf("encode the JWK Set of %q: %w", name, err)
	}
	return &logical.Response{Data: map[string]any{
		logical.HTTPContentType: "application/json",
		logical.HTTPRawBody:     body,
		logical.HTTPStatusCode:  http.StatusOK,
	}}, nil
}

func errNoKeys(name string) error {
	return logical.CodedError(http.StatusNotFound, fmt.Sprintf("%q has no signing key: write private_key, generate_key or service_account_json to config/%s", name, name))
}

// loadSigningConfig loads name's config with its keys; a name without a
// signing key is a 404.
func loadSigningConfig(ctx context.Context, s logical.Storage, name string) (*providerConfig, error) {
	cfg, err := loadConfig(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if cfg == nil || cfg.keys.signer() == nil {
		return nil, errNoKeys(name)
	}
	return cfg, nil
}
