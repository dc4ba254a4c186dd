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
	paths := keyPaths(b, "key/(?P<name>[^/]+)", "key", name, b.configKeys)
	return append(paths, &framework.Path{
		Pattern:      jwksPattern + "(?P<name>[^/]+)$",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "tokenbroker", OperationSuffix: "jwks"},
		Fields:       map[string]*framework.FieldSchema{"name": name},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{Callback: b.pathJWKSRead, Summary: "The name's public keys as a JWK Set (RFC 7517), without a Vault token."},
		},
		HelpSynopsis:    "A JWK Set of a name's public keys, for providers that fetch a client's keys.",
		HelpDescription: jwksHelp,
	}, &framework.Path{
		Pattern:      jwksPattern + "app/(?P<name>[^/]+)$",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "tokenbroker", OperationSuffix: "app-jwks"},
		Fields:       map[string]*framework.FieldSchema{"name": {Type: framework.TypeString, Description: "Name of the app."}},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{Callback: b.pathAppJWKSRead, Summary: "The app's public keys as a JWK Set (RFC 7517), without a Vault token."},
		},
		HelpSynopsis:    "A JWK Set of an app's public keys, for providers that fetch a client's keys.",
		HelpDescription: jwksHelp,
	})
}

// keyPaths are the read, rotate and promote paths of the signing keys that
// holder finds from a request: at base (a config's key/<name>, an app's
// app/<name>/key).
func keyPaths(b *backend, base, suffix string, name *framework.FieldSchema, holder func(d *framework.FieldData) (keyHolder, error)) []*framework.Path {
	forward := func(cb framework.OperationFunc, summary string) framework.OperationHandler {
		return &framework.PathOperation{Callback: cb, Summary: summary, ForwardPerformanceStandby: true, ForwardPerformanceSecondary: true}
	}
	return []*framework.Path{{
		Pattern:      base + "/rotate$",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "tokenbroker", OperationVerb: "rotate", OperationSuffix: suffix},
		Fields: map[string]*framework.FieldSchema{
			"name": name, "generate_key": configFields["generate_key"], "private_key": configFields["private_key"],
			"certificate": configFields["certificate"], "key_id": configFields["key_id"],
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: forward(b.keyRotate(holder), "Add a next signing key (generated or imported), published at once; promote makes it current."),
		},
		HelpSynopsis:    "Add the next signing key.",
		HelpDescription: rotateHelp,
	}, {
		Pattern:      base + "/promote$",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "tokenbroker", OperationVerb: "promote", OperationSuffix: suffix},
		Fields:       map[string]*framework.FieldSchema{"name": name},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: forward(b.keyPromote(holder), "Make the next signing key current; the previous one stays published for one assertion lifetime."),
		},
		HelpSynopsis:    "Make the next signing key current.",
		HelpDescription: rotateHelp,
	}, {
		Pattern:      base + "$",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "tokenbroker", OperationSuffix: suffix},
		Fields:       map[string]*framework.FieldSchema{"name": name},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{Callback: b.keyRead(holder), Summary: "Read the public part of the signing keys (never a private key)."},
		},
		HelpSynopsis:    "The public signing keys: to register with the provider.",
		HelpDescription: keyHelp,
	}}
}

// keyHolder is what holds signing keys: a config, or an app (for every
// connection of it).
type keyHolder struct {
	owner string      // the key entry's name: the config's, or appKeyOwner's
	lock  sync.Locker // held while the keys change
	load  func(ctx context.Context, s logical.Storage) (*providerConfig, error)
	// changed republishes what depends on the keys once they are stored.
	changed func(cfg *providerConfig, ring *keyRing)
}

// configKeys is the key holder of config/<name>.
func (b *backend) configKeys(d *framework.FieldData) (keyHolder, error) {
	name, err := nameField(d)
	if err != nil {
		return keyHolder{}, err
	}
	load := func(ctx context.Context, s logical.Storage) (*providerConfig, error) {
		cfg, err := loadConfig(ctx, s, name)
		if err == nil && cfg != nil && cfg.App != "" {
			return nil, logical.CodedError(http.StatusBadRequest, fmt.Sprintf(
				"%q is a connection of app %q, whose keys sign for it: see app/%s/key", name, cfg.App, cfg.App))
		}
		return cfg, err
	}
	return keyHolder{owner: name, lock: b.lockFor(name), load: load,
		changed: func(cfg *providerConfig, ring *keyRing) { b.replaceKeys(name, cfg, ring) }}, nil
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

// keyRead shows the public part of a holder's keys.
func (b *backend) keyRead(holder func(d *framework.FieldData) (keyHolder, error)) framework.OperationFunc {
	return func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
		h, err := holder(d)
		if err != nil {
			return logical.ErrorResponse(err.Error()), nil
		}
		cfg, err := h.signing(ctx, req.Storage)
		if err != nil {
			return nil, err
		}
		return &logical.Response{Data: b.keyData(cfg)}, nil
	}
}

// keyData is what a key read shows of cfg's keys.
func (b *backend) keyData(cfg *providerConfig) map[string]any {
	data := cfg.keyFacts(cfg.keys.active(), "")
	if next := cfg.keys.pending(); next != nil {
		for k, v := range cfg.keyFacts(next, "next_") {
			data[k] = v
		}
	}
	if prev := cfg.keys.previous; prev != nil && b.now().Before(cfg.keys.previousUntil) {
		data["previous_key_id"], data["previous_published_until"] = prev.kid, timeOrEmpty(cfg.keys.previousUntil)
	}
	return data
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

// keyRotate adds a next key.
func (b *backend) keyRotate(holder func(d *framework.FieldData) (keyHolder, error)) framework.OperationFunc {
	return b.changeKeys(holder, func(d *framework.FieldData, cfg *providerConfig, owner string) (*keyRing, error) {
		str := func(key string) string { s, _ := d.Raw[key].(string); return strings.TrimSpace(s) }
		privatePEM, kind := str("private_key"), str("generate_key")
		if privatePEM == "" && kind == "" {
			return nil, fmt.Errorf("give generate_key or private_key: the next key")
		}
		k, err := cfg.makeKey(privatePEM, kind, str("key_id"), str("certificate"), owner, b.now())
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
		b.refreshLog.Info("next signing key added", "name", owner, "key_id", k.kid)
		return next.keys, nil
	})
}

// keyPromote makes the next key current.
func (b *backend) keyPromote(holder func(d *framework.FieldData) (keyHolder, error)) framework.OperationFunc {
	return b.changeKeys(holder, func(_ *framework.FieldData, cfg *providerConfig, owner string) (*keyRing, error) {
		ring, err := cfg.keys.promoted(b.now(), cfg.endpoint().AssertionTTL())
		if err == nil {
			b.refreshLog.Info("next signing key promoted by an operator", "name", owner, "key_id", ring.current.kid)
		}
		return ring, err
	})
}

// changeKeys applies change to a holder's keys under its lock, stores and
// publishes them, and answers with the key read.
func (b *backend) changeKeys(holder func(d *framework.FieldData) (keyHolder, error),
	change func(d *framework.FieldData, cfg *providerConfig, owner string) (*keyRing, error)) framework.OperationFunc {
	return func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
		h, err := holder(d)
		if err != nil {
			return logical.ErrorResponse(err.Error()), nil
		}
		h.lock.Lock()
		defer h.lock.Unlock()
		cfg, err := h.signing(ctx, req.Storage)
		if err != nil {
			return nil, err
		}
		ring, err := change(d, cfg, h.owner)
		if err != nil {
			return logical.ErrorResponse(err.Error()), nil
		}
		if err := writeKeyRing(ctx, req.Storage, h.owner, ring); err != nil {
			return nil, err
		}
		b.keysChanged(h.owner, cfg.withKeys(ring))
		h.changed(cfg, ring)
		return &logical.Response{Data: b.keyData(cfg.withKeys(ring))}, nil
	}
}

// signing loads the holder's config with its keys; one without a signing
// key is a 404.
func (h keyHolder) signing(ctx context.Context, s logical.Storage) (*providerConfig, error) {
	cfg, err := h.load(ctx, s)
	if err != nil {
		return nil, err
	}
	if cfg == nil || cfg.keys.active() == nil {
		return nil, errNoKeys(h.owner)
	}
	return cfg, nil
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

// pathAppJWKSRead serves an app's published public keys, as pathJWKSRead
// a config's.
func (b *backend) pathAppJWKSRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	app, _ := d.Raw["name"].(string)
	if err := validAppName(app); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	doc, err := b.jwks.get(ctx, req.Storage, appKeyOwner(app))
	if err != nil {
		return nil, err
	}
	if doc == nil {
		return nil, errNoKeys(appKeyOwner(app))
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
	if err == nil {
		var apps []string // apps' keys, a folder below (appKeyOwner)
		if apps, err = s.List(ctx, keyPrefix+appPrefix); err == nil {
			for _, app := range apps {
				names = append(names, appKeyOwner(app))
			}
		}
	}
	if err != nil {
		return fmt.Errorf("list signing keys: %w", err)
	}
	for _, name := range names {
		if !strings.HasSuffix(name, "/") {
			p.docs.LoadOrStore(name, unencoded) // an entry stored since is newer
		}
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
		cfg, err := loadKeyHolder(ctx, s, name)
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
	if !isKey && strings.HasPrefix(key, appPrefix) {
		name = key // an app's keys are held under its entry's own key (appKeyOwner)
	} else if !isKey {
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

func errNoKeys(owner string) error {
	if app, ok := strings.CutPrefix(owner, appPrefix); ok {
		return logical.CodedError(http.StatusNotFound, fmt.Sprintf("app %q has no signing key: write private_key or generate_key to app/%s", app, app))
	}
	return logical.CodedError(http.StatusNotFound, fmt.Sprintf("%q has no signing key: write private_key, generate_key or service_account_json to config/%s", owner, owner))
}

// loadKeyHolder loads the config (or, for appKeyOwner's name, the app) whose
// keys owner names, with its keys; nil when it has none.
func loadKeyHolder(ctx context.Context, s logical.Storage, owner string) (*providerConfig, error) {
	if app, ok := strings.CutPrefix(owner, appPrefix); ok {
		return loadApp(ctx, s, app)
	}
	return loadConfig(ctx, s, owner)
}
