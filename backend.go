// Package tokenbroker is a Vault secrets engine that keeps long-lived client
// credentials and hands out short-lived access tokens: cached, refreshed ahead
// of expiry, with single-use refresh tokens rotated and persisted.
package tokenbroker

import (
	"context"
	"crypto/sha256"
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
var Version = "v0.2.0-dev"

// VaultAlive, set by the plugin's main, reports whether the Vault that
// started this process still runs. An orphaned plugin never calls a provider.
var VaultAlive = func() bool { return true }

const backendHelp = `
The tokenbroker secrets engine keeps long-lived provider credentials (client
id and secret, an API key, or a seed refresh token) and hands out short-lived
access tokens. Operators write config/<name>; apps read creds/<name>.
`

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

	// entries holds one *nameEntry per name seen: its published snapshot
	// (what the read path needs, so a cached read touches neither storage
	// nor a lock), its lock and its metrics counters, behind one map entry.
	entries sync.Map
	// narrowings memoises narrowed reads' parameters (narrowing.go).
	narrowings narrowingMemo
	// roles holds the roles read (path_role.go).
	roles roleCache
	// residency bounds how many names keep their state in memory (residency.go).
	residency residency
	// invalidations counts Invalidate calls, so a load that raced one is discarded.
	invalidations atomic.Uint64
	// flight collapses concurrent obtains of one name into one upstream call.
	flight singleflight.Group
	// refreshWorkers bounds the background refresh loop's concurrency.
	refreshWorkers chan struct{}
	// sched is every loaded chain's next background refresh time; loop runs
	// the refreshes on the node that can write storage (background.go).
	sched *schedule
	loop  refreshLoop
	pacer pacer
	// limits paces provider calls per token-URL host (ratelimit.go).
	limits *hostLimits
	// names is the sorted index of configured names behind paginated LISTs.
	names nameIndex
	// appLocks holds one *sync.Mutex per app written (app.go).
	appLocks sync.Map
	// connectionIndexes holds one *nameIndex per app listed: its
	// connections' names, sorted, behind LIST app/<app>/connections.
	connectionIndexes sync.Map

	// metrics holds the counters and registry behind metrics/ (metrics.go).
	metrics *metrics
	// loadedSettings holds the mount-wide settings once loaded (settings.go);
	// settingsMu serialises their writes.
	loadedSettings atomic.Pointer[mountSettings]
	settingsMu     sync.Mutex

	// onboard holds device pollers and authorization outcomes (onboarding.go, device.go).
	onboard onboarding

	// jwks holds the encoded JWK Sets of the names with signing keys (path_keys.go).
	jwks publishedJWKS

	// hooks delivers webhook events (webhook.go, webhook_delivery.go).
	hooks *webhookHooks
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
		refreshWorkers:    make(chan struct{}, backgroundWorkers),
		sched:             newSchedule(),
		pacer:             pacer{floor: paceFloor},
		limits:            newHostLimits(),
		metrics:           newMetrics(),
		names:             nameIndex{list: configNames},
		hooks:             newWebhookHooks(),
		residency:         residency{max: defaultResidentMax},
	}
	b.metrics.watchWebhooks(b.hooks, func() time.Time { return b.now() })
	if b.logger == nil {
		b.logger = hclog.NewNullLogger()
	}
	b.setLogger(b.logger)
	b.Backend = &framework.Backend{
		Help:        strings.TrimSpace(backendHelp),
		BackendType: logical.TypeLogical,
		PathsSpecial: &logical.Paths{
			SealWrapStorage: []string{configPrefix, tokenPrefix, settingsKey, authPrefix, keyPrefix, appPrefix, connectionIndexPrefix, webhookPrefix, rolePrefix},
			// The provider sends the user's browser back here without a Vault token;
			// public keys are public (jwks/<name>).
			Unauthenticated: []string{callbackPath, jwksPattern + "*"},
		},
		Paths: framework.PathAppend(
			pathConfig(b),
			pathApp(b),
			pathSelf(b),
			pathCreds(b),
			pathRole(b),
			pathStatus(b),
			pathSettings(b),
			pathMetrics(b),
			pathAuthorize(b),
			pathCallback(b),
			pathDevice(b),
			pathKeys(b),
			pathWebhooks(b),
		),
		Secrets:        []*framework.Secret{},
		Invalidate:     b.invalidate,
		PeriodicFunc:   b.periodicRefresh,
		InitializeFunc: b.initialize,
		Clean:          func(context.Context) { b.cancel(); b.hooks.stop() },
		RunningVersion: Version,
	}
	return b
}

// setLogger sets the logger and the named loggers derived from it.
func (b *backend) setLogger(l hclog.Logger) {
	b.logger = l
	b.refreshLog, b.providerLog, b.cacheLog = l.Named("refresh"), l.Named("provider"), l.Named("cache")
}

// invalidate drops what another node changed, so the next read reloads it.
func (b *backend) invalidate(_ context.Context, key string) {
	if key == settingsKey {
		b.invalidations.Add(1)
		b.loadedSettings.Store(nil)
		return
	}
	b.jwks.invalidate(key)
	if role, ok := strings.CutPrefix(key, rolePrefix); ok {
		b.roleChanged(role)
		return
	}
	if strings.HasPrefix(key, appPrefix) {
		b.invalidations.Add(1)
		b.forgetLoaded() // app.go
		return
	}
	if ref, ok := strings.CutPrefix(key, connectionIndexPrefix); ok {
		app, _, _ := strings.Cut(ref, "/")
		if x, loaded := b.connectionIndexes.Load(app); loaded {
			x.(*nameIndex).reset() // another node made or deleted a connection of app
		}
		return
	}
	name, ok := strings.CutPrefix(key, configPrefix)
	if !ok {
		if name, ok = strings.CutPrefix(key, tokenPrefix); !ok {
			if name, ok = strings.CutPrefix(key, keyPrefix); !ok {
				return
			}
		}
	}
	b.invalidations.Add(1)
	if strings.HasPrefix(key, configPrefix) {
		b.names.reset() // another node wrote or deleted a config
	}
	if s := b.loaded(name); s != nil && s.dirty {
		// A state we could not persist yet is newer than anything stored.
		return
	}
	b.forget(name)
}

// nameEntry is what memory holds for one name. Entries are never removed (a
// deleted config's is a few dozen bytes): no window where two callers hold
// different locks, and counters that survive a config's re-creation.
type nameEntry struct {
	snap atomic.Pointer[snapshot] // nil: not loaded
	// lock serialises the name's upstream calls and writes. Per name, not
	// hashed into shared buckets: a slow provider call must never hold up
	// another name. Reads never take it.
	lock     sync.Mutex
	counters nameCounters
	cost     residentCost // the residency sweep's own (residency.go)
	// variants are the name's narrowed tokens (variants.go), kept out of
	// the snapshot: a renewal of the main token leaves them be.
	variants variantTable
}

// entry returns name's entry, creating it on first use. Entries are never
// removed, so only names found in storage get one: callers check first that
// the name has a config, or (the unauthenticated callback) a pending
// authorization matching the state. Unknown names cost nothing that lasts.
func (b *backend) entry(name string) *nameEntry {
	if e, ok := b.entries.Load(name); ok {
		return e.(*nameEntry)
	}
	e, _ := b.entries.LoadOrStore(name, new(nameEntry))
	return e.(*nameEntry)
}

// lockFor returns name's mutex, creating name's entry (see entry).
func (b *backend) lockFor(name string) *sync.Mutex { return &b.entry(name).lock }

// counters returns name's metrics counters.
func (b *backend) counters(name string) *nameCounters { return &b.entry(name).counters }

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
