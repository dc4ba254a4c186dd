package tokenbroker

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/sync/singleflight"
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
			"name": name, "generate_key": configFields["generate_key"], "private_key": configFields["private_key"],
			"certificate": configFields["certificate"], "key_id": configFields["key_id"],
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
keys straight from Vault: https://<vault>/v1/<mount>/jwks/<name>. Served from
memory with Cache-Control: public, max-age=300 and an ETag; a matching
If-None-Match gets a 304. Vault passes both headers only when the mount
allows them: vault secrets tune -allowed-response-headers=ETag
-passthrough-request-headers=If-None-Match <mount>.
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
	data := cfg.keyFacts(cfg.keys.active(), "")
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
		if k.kid == cfg.keys.active().kid {
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
	b.keysChanged(name, cfg.withKeys(ring))
	b.replaceKeys(name, cfg, ring)
	return b.pathKeyRead(ctx, req, d)
}

// pathJWKSRead serves a name's published public keys as a raw JWK Set. It
// needs no Vault token (PathsSpecial.Unauthenticated), so it is served from
// memory: the set is encoded when the keys change, not per request.
func (b *backend) pathJWKSRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, _ := d.Raw["name"].(string) // from the path: the field decoder would only allocate
	if err := validName(name); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	doc, err := b.jwks.get(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if doc == nil {
		return nil, errNoKeys(name)
	}
	return doc.at(b.now()).response(req.Headers), nil
}

// jwksCacheControl lets a provider or a cache keep a JWK Set five minutes
// (RFC 9111 §5.2.2.1): a provider that honours it sees a next key within
// five minutes of key/<name>/rotate, so waiting that long before promoting
// is always enough, and a direct key replacement on config/<name> reaches it
// as fast; in between, repeated fetches cost the provider a cached copy (or,
// with the ETag, a 304) and Vault nothing. Keys change by operator action;
// a previous key staying in a cache a little longer than published is
// harmless: it signs nothing any more.
const jwksCacheControl = "public, max-age=300"

// jwksBody is one encoding of a JWK Set and its entity tag.
type jwksBody struct {
	body []byte
	etag string // a strong entity tag (RFC 9110 §8.8.3): the body's SHA-256, quoted
	// etagHeader is the ETag header's value, shared by every response (read only).
	etagHeader []string
}

// response is the raw response serving j: 304 Not Modified when the
// request's If-None-Match names j's entity tag (RFC 9110 §13.1.2), which
// reaches the plugin only where the mount passes the header through
// (passthrough_request_headers), as the ETag reaches clients only where it
// allows it (allowed_response_headers).
func (j *jwksBody) response(headers map[string][]string) *logical.Response {
	resp := &logical.Response{
		Data: map[string]any{
			logical.HTTPContentType:        "application/json",
			logical.HTTPStatusCode:         http.StatusOK,
			logical.HTTPCacheControlHeader: jwksCacheControl,
		},
		Headers: map[string][]string{"ETag": j.etagHeader},
	}
	if noneMatch(headers, j.etag) {
		resp.Data[logical.HTTPStatusCode] = http.StatusNotModified
		return resp
	}
	resp.Data[logical.HTTPRawBody] = j.body
	return resp
}

// noneMatch reports whether an If-None-Match header (any case) names etag:
// "*", or a list of entity tags compared weakly (RFC 9110 §13.1.2, §8.8.3.2).
func noneMatch(headers map[string][]string, etag string) bool {
	for key, values := range headers {
		if !strings.EqualFold(key, "If-None-Match") {
			continue
		}
		for _, value := range values {
			for tag := range strings.SplitSeq(value, ",") {
				if tag = strings.TrimSpace(tag); tag == "*" || strings.TrimPrefix(tag, "W/") == etag {
					return true
				}
			}
		}
	}
	return false
}

// jwksDoc is a name's published JWK Set, encoded once per change of its keys
// or config: the set to serve, and, while a previous key is still published
// (until its time), the set that includes it.
type jwksDoc struct {
	current, withPrevious *jwksBody
	previousUntil         time.Time
}

// at is the set published at now.
func (d *jwksDoc) at(now time.Time) *jwksBody {
	if now.Before(d.previousUntil) {
		return d.withPrevious
	}
	return d.current
}

// newJWKSDoc encodes the JWK Sets of cfg's keys (cfg has a signing key).
func newJWKSDoc(cfg *providerConfig) (*jwksDoc, error) {
	encode := func(keys []*signingKey) (*jwksBody, error) {
		jwks := make([]map[string]any, 0, len(keys))
		for _, k := range keys {
			jwks = append(jwks, k.jwk(cfg.endpointWith(k).SigningAlgorithm()))
		}
		body, err := json.Marshal(map[string]any{"keys": jwks})
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(body)
		etag := `"` + base64.RawURLEncoding.EncodeToString(sum[:]) + `"`
		return &jwksBody{body: body, etag: etag, etagHeader: []string{etag}}, nil
	}
	ring := cfg.keys
	current, err := encode(ring.published(ring.previousUntil)) // once the previous key is no longer published
	if err != nil {
		return nil, err
	}
	doc := &jwksDoc{current: current}
	if ring.previous != nil && !ring.previousUntil.IsZero() {
		if doc.withPrevious, err = encode(ring.published(time.Time{})); err != nil {
			return nil, err
		}
		doc.previousUntil = ring.previousUntil
	}
	return doc, nil
}

// publishedJWKS holds the JWK Sets of the names with signing keys, so an
// unauthenticated jwks/<name> reads memory only. A name gets an entry when
// it has keys (listed from storage once, written here, or invalidated);
// a name without keys never gets one, so requests for unknown names allocate
// nothing that stays and touch no storage once the keys were listed.
type publishedJWKS struct {
	// docs: name -> *jwksDoc, or unencoded for a name whose keys must be
	// (re)loaded from storage. Read without a lock.
	docs sync.Map
	// mu serialises changes, the listing and the keeping of loaded sets.
	mu sync.Mutex
	// listed: docs has an entry for every name with keys in storage.
	listed atomic.Bool
	// gen counts changes (under mu): a set loaded while one happened is
	// served to its request but not kept.
	gen uint64
	// loads collapses concurrent loads of one name into one.
	loads singleflight.Group
}

// unencoded marks a name with keys in storage whose set is not encoded yet.
var unencoded = new(jwksDoc)

// get returns name's JWK Set, nil when the name has no keys.
func (p *publishedJWKS) get(ctx context.Context, s logical.Storage, name string) (*jwksDoc, error) {
	v, ok := p.docs.Load(name)
	if !ok && !p.listed.Load() {
		if err := p.list(ctx, s); err != nil {
			return nil, err
		}
		v, ok = p.docs.Load(name)
	}
	switch {
	case !ok:
		return nil, nil // no keys: nothing read, nothing kept
	case v != unencoded:
		return v.(*jwksDoc), nil
	}
	return p.load(ctx, s, name)
}

// list gives every name with keys in storage an entry, once.
func (p *publishedJWKS) list(ctx context.Context, s logical.Storage) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.listed.Load() {
		return nil
	}
	names, err := s.List(ctx, keyPrefix)
	if err != nil {
		return fmt.Errorf("list signing keys: %w", err)
	}
	for _, name := range names {
		p.docs.LoadOrStore(name, unencoded) // an entry stored since is newer
	}
	p.listed.Store(true)
	return nil
}

// load reads name's config and keys from storage and encodes its set.
func (p *publishedJWKS) load(ctx context.Context, s logical.Storage, name string) (*jwksDoc, error) {
	v, err, _ := p.loads.Do(name, func() (any, error) {
		p.mu.Lock()
		gen := p.gen
		p.mu.Unlock()
		cfg, err := loadConfig(ctx, s, name)
		if err != nil {
			return nil, err
		}
		var doc *jwksDoc
		if cfg != nil && cfg.keys.active() != nil {
			if doc, err = newJWKSDoc(cfg); err != nil {
				return nil, fmt.Errorf("encode the JWK Set of %q: %w", name, err)
			}
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.gen == gen {
			p.keep(name, doc)
		}
		return doc, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*jwksDoc), nil
}

// keep makes doc name's entry, or drops the entry when doc is nil; mu is held.
func (p *publishedJWKS) keep(name string, doc *jwksDoc) {
	if doc == nil {
		p.docs.Delete(name)
	} else {
		p.docs.Store(name, doc)
	}
}

// changed publishes name's set after its keys or config were written on
// this node (cfg holds its keys; nil: deleted). A set that cannot be encoded
// is loaded again on the next request.
func (p *publishedJWKS) changed(name string, cfg *providerConfig) {
	var doc *jwksDoc
	if cfg != nil && cfg.keys.active() != nil {
		var err error
		if doc, err = newJWKSDoc(cfg); err != nil {
			doc = unencoded
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gen++
	p.keep(name, doc)
}

// invalidate marks name's set for reloading after another node wrote its
// keys (key/<name>) or, for a name with keys, its config (config/<name>):
// the next request loads it from storage (a standby, a performance
// secondary).
func (p *publishedJWKS) invalidate(key string) {
	name, isKey := strings.CutPrefix(key, keyPrefix)
	if !isKey {
		var isConfig bool
		if name, isConfig = strings.CutPrefix(key, configPrefix); !isConfig {
			return
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gen++
	if _, has := p.docs.Load(name); has || isKey {
		p.docs.Store(name, unencoded)
	}
}

// keysChanged publishes name's JWK Set after its keys or config changed on
// this node (cfg nil: deleted). Callers hold the name's lock.
func (b *backend) keysChanged(name string, cfg *providerConfig) { b.jwks.changed(name, cfg) }

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
	if cfg == nil || cfg.keys.active() == nil {
		return nil, errNoKeys(name)
	}
	return cfg, nil
}
