// Package tokenbroker is a Vault secrets engine that keeps long-lived client
// credentials and hands out short-lived access tokens: cached, refreshed ahead
// of expiry, with single-use refresh tokens rotated and persisted.
package tokenbroker

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/sync/singleflight"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// Version is the plugin's version, set at build time with -ldflags -X.
var Version = "v0.1.0-dev"

const backendHelp = `
The tokenbroker secrets engine keeps long-lived provider credentials (client
id and secret, an API key, or a seed refresh token) and hands out short-lived
access tokens. Operators write config/<name>; apps read creds/<name>.
`

// Storage prefixes: config and token state are separate entries keyed by name.
const (
	configPrefix = "config/"
	tokenPrefix  = "token/"
)

// Factory is the plugin entry point Vault calls to build the backend.
func Factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	b := newBackend(conf)
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}

// backend is the tokenbroker secrets engine.
type backend struct {
	*framework.Backend
	// Named loggers: refresh (rotation, healing, storage of token state),
	// provider (one line per upstream call), cache (debug: read decisions).
	logger, refreshLog, providerLog, cacheLog hclog.Logger

	// storage is the mount's view, for work that outlives a request
	// (background refreshes); requests use their own req.Storage.
	storage logical.Storage

	// ctx lives as long as the backend; upstream calls run on it so a caller
	// hanging up cannot cut a refresh in half and lose a rotated token.
	ctx    context.Context
	cancel context.CancelFunc

	// now and newHTTPClient are injected so tests control time and the network.
	now           func() time.Time
	newHTTPClient func(caPEM string) (*http.Client, error)
	// clients shares one pooled HTTP client per distinct ca_pem, so thousands
	// of names do not each hold a connection pool: sha256(ca_pem) -> *http.Client.
	clients sync.Map
	// persistRetryDelay spaces the retries of a failed state write.
	persistRetryDelay time.Duration

	// cache holds one *nameCache per name: what the read path needs, so a
	// cached read touches neither storage nor a lock.
	cache sync.Map
	// invalidations counts Invalidate calls, so a load that raced one is discarded.
	invalidations atomic.Uint64

	// locks holds one *sync.Mutex per name, serialising its upstream calls and
	// writes. Per name, not hashed into shared buckets: a slow provider call
	// must never hold up another name. Reads never take them.
	locks sync.Map
	// flight collapses concurrent mints of one name into one upstream call.
	flight singleflight.Group
	// background bounds the background refresh pass's concurrency.
	background chan struct{}
}

func newBackend(conf *logical.BackendConfig) *backend {
	ctx, cancel := context.WithCancel(context.Background())
	b := &backend{
		logger:            conf.Logger,
		storage:           conf.StorageView,
		ctx:               ctx,
		cancel:            cancel,
		now:               time.Now,
		newHTTPClient:     provider.NewHTTPClient,
		persistRetryDelay: 50 * time.Millisecond,
		background:        make(chan struct{}, backgroundWorkers),
	}
	if b.logger == nil {
		b.logger = hclog.NewNullLogger()
	}
	b.setLogger(b.logger)
	b.Backend = &framework.Backend{
		Help:        strings.TrimSpace(backendHelp),
		BackendType: logical.TypeLogical,
		PathsSpecial: &logical.Paths{
			SealWrapStorage: []string{configPrefix, tokenPrefix},
		},
		Paths: framework.PathAppend(
			pathConfig(b),
			pathCreds(b),
			pathStatus(b),
		),
		Secrets:        []*framework.Secret{},
		Invalidate:     b.invalidate,
		PeriodicFunc:   b.periodicRefresh,
		Clean:          b.cleanup,
		RunningVersion: Version,
	}
	return b
}

func (b *backend) setLogger(l hclog.Logger) {
	b.logger = l
	b.refreshLog, b.providerLog, b.cacheLog = l.Named("refresh"), l.Named("provider"), l.Named("cache")
}

func (b *backend) cleanup(context.Context) { b.cancel() }

// invalidate drops what another node changed, so the next read reloads it.
func (b *backend) invalidate(_ context.Context, key string) {
	var name string
	switch {
	case strings.HasPrefix(key, configPrefix):
		name = strings.TrimPrefix(key, configPrefix)
	case strings.HasPrefix(key, tokenPrefix):
		name = strings.TrimPrefix(key, tokenPrefix)
	default:
		return
	}
	b.invalidations.Add(1)
	if v, ok := b.cache.Load(name); ok && v.(*nameCache).dirty {
		// A state we could not persist yet is newer than anything stored.
		return
	}
	b.cache.Delete(name)
}

// validName checks a config name: 1-128 letters, digits, '-', '_' or '.'.
// Names live in paths, so ordinary path policies gate them. (A loop, not a
// regexp: it runs on every creds read.)
func validName(name string) error {
	ok := len(name) >= 1 && len(name) <= 128 && name != "." && name != ".."
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
	}
	if !ok {
		return fmt.Errorf("invalid name %q: use 1-128 letters, digits, '-', '_' or '.'", name)
	}
	return nil
}

// nameCache is one name's immutable snapshot: its config, token state and
// runtime health. Changes swap in a new snapshot, never edit one in place.
type nameCache struct {
	cfg    *providerConfig
	client *http.Client
	state  *tokenState // nil: no token state stored
	// dirty: state is newer than storage (a write failed); it must win over storage.
	dirty bool
	// view holds the creds response values fixed by state, boxed once per
	// snapshot so a cached read only assembles the map.
	view credsView
	health
}

// credsView is the part of a creds response that one token state fixes.
type credsView struct {
	accessToken, tokenType, expiresAt, expiresAtSeconds, rotationPeriod, scopes any
}

func newCredsView(st *tokenState) credsView {
	if st == nil {
		return credsView{}
	}
	v := credsView{
		accessToken:      st.AccessToken,
		tokenType:        st.TokenType,
		expiresAt:        st.ExpiresAt.UTC().Format(time.RFC3339),
		expiresAtSeconds: st.ExpiresAt.Unix(),
		rotationPeriod:   int64(st.lifetime().Seconds()),
	}
	if len(st.Scopes) > 0 {
		v.scopes = st.Scopes
	}
	return v
}

func newNameCache(cfg *providerConfig, client *http.Client, state *tokenState) *nameCache {
	return &nameCache{cfg: cfg, client: client, state: state, view: newCredsView(state)}
}

// health is what the provider calls of one name taught us since the plugin
// started; it lives in memory only (status/<name> shows it).
type health struct {
	// failing counts consecutive failures; zero once a call succeeds.
	failing      int
	backoffUntil time.Time // our own backoff, for background refreshes
	notBefore    time.Time // the provider's Retry-After, honoured by every caller

	mints, refreshes, failures int
	lastSuccessAt              time.Time
	lastErr                    error
	lastErrAt                  time.Time
}

func (nc *nameCache) with(change func(*nameCache)) *nameCache {
	next := *nc
	change(&next)
	if next.state != nc.state {
		next.view = newCredsView(next.state)
	}
	return &next
}

// entry returns the snapshot for name, loading it from storage on first use.
// It returns nil when the name has no config.
func (b *backend) entry(ctx context.Context, s logical.Storage, name string) (*nameCache, error) {
	if v, ok := b.cache.Load(name); ok {
		return v.(*nameCache), nil
	}
	epoch := b.invalidations.Load()
	cfg, err := loadConfig(ctx, s, name)
	if err != nil || cfg == nil {
		return nil, err
	}
	state, err := loadState(ctx, s, name)
	if err != nil {
		return nil, err
	}
	client, err := b.httpClient(cfg.CAPEM)
	if err != nil {
		return nil, fmt.Errorf("config %q: %w", name, err)
	}
	loaded := newNameCache(cfg, client, state)
	v, _ := b.cache.LoadOrStore(name, loaded)
	if b.invalidations.Load() != epoch {
		// Storage changed while we read it; do not keep what may be stale.
		b.cache.CompareAndDelete(name, loaded)
	}
	return v.(*nameCache), nil
}

// lockFor returns name's mutex. Mutexes are never removed: a few bytes per
// name ever configured, and no window where two callers hold different ones.
func (b *backend) lockFor(name string) *sync.Mutex {
	if m, ok := b.locks.Load(name); ok {
		return m.(*sync.Mutex)
	}
	m, _ := b.locks.LoadOrStore(name, new(sync.Mutex))
	return m.(*sync.Mutex)
}

// httpClient returns the shared client that trusts caPEM (or the system roots).
func (b *backend) httpClient(caPEM string) (*http.Client, error) {
	key := sha256.Sum256([]byte(caPEM))
	if c, ok := b.clients.Load(key); ok {
		return c.(*http.Client), nil
	}
	c, err := b.newHTTPClient(caPEM)
	if err != nil {
		return nil, err
	}
	shared, _ := b.clients.LoadOrStore(key, c)
	return shared.(*http.Client), nil
}

// put publishes a new snapshot for name.
func (b *backend) put(name string, nc *nameCache) { b.cache.Store(name, nc) }
