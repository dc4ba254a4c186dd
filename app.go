package tokenbroker

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"sync"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// Apps and their connections. An app (app/<app>) is an OAuth client: every
// config field but what belongs to one chain. A connection is a config whose
// stored entry names an app (config/<name> app=<app>): one chain of that
// client, and who owns it. Its entry holds only the app's name and its owner;
// loadConfig resolves the rest from the app every time, so an app write (a
// rotated secret, new scopes) is one write for all its connections, and a
// connection costs storage and memory for its chain alone.

const (
	appPrefix = "app/"
	// connectionIndexPrefix keys the index of an app's connections:
	// appconn/<app>/<name>, so LIST app/<app>/connections lists one folder.
	connectionIndexPrefix = "appconn/"
	// maxAppName keeps a self/ connection's name (<app>.<entity id>) within
	// a config name's 128 characters.
	maxAppName = 64
)

// connectionRef is an app's index entry for one of its connections.
type connectionRef struct {
	Owner string `json:"owner,omitempty"`
}

// validAppName checks an app's name: a config name of at most maxAppName characters.
func validAppName(app string) error {
	if err := validName(app); err != nil {
		return err
	}
	if len(app) > maxAppName {
		return fmt.Errorf("invalid app name %q: use at most %d characters", app, maxAppName)
	}
	return nil
}

// appLock is the lock of app's entry: held to change the app (a write, a
// delete, a promoted secret or key), and shared (RLock) to make a
// connection of it, so connections are made in parallel but never for an
// app being deleted. Lock order: a connection's lock, then its app's; an
// app write never takes a connection's lock while it holds its own.
func (b *backend) appLock(app string) *sync.RWMutex {
	l, _ := b.appLocks.LoadOrStore(app, &sync.RWMutex{})
	return l.(*sync.RWMutex)
}

// appKeyOwner is the name an app's signing keys are stored under
// (key/app/<app>) and published by (jwks/app/<app>): never a config's, whose
// names hold no '/'.
func appKeyOwner(app string) string { return appPrefix + app }

// loadApp reads app with its signing keys; nil when there is no such app.
func loadApp(ctx context.Context, s logical.Storage, app string) (*providerConfig, error) {
	cfg, err := appEntries.load(ctx, s, app)
	if err != nil || cfg == nil {
		return nil, err
	}
	cfg.keys, err = loadKeyRing(ctx, s, appKeyOwner(app))
	return cfg, err
}

// appKeys is the key holder of app/<name>: its keys sign for every
// connection of the app.
func (b *backend) appKeys(d *framework.FieldData) (keyHolder, error) {
	app, err := appNameField(d)
	if err != nil {
		return keyHolder{}, err
	}
	return keyHolder{owner: appKeyOwner(app), lock: b.appLock(app),
		load:    func(ctx context.Context, s logical.Storage) (*providerConfig, error) { return loadApp(ctx, s, app) },
		changed: func(*providerConfig, *keyRing) {}}, nil // connections load the app's keys for each renewal
}

// resolveConnection is connection name's config: its app's client, with
// the connection's own App and Owner.
func resolveConnection(ctx context.Context, s logical.Storage, name string, conn *providerConfig) (*providerConfig, error) {
	app, err := loadApp(ctx, s, conn.App)
	if err != nil {
		return nil, err
	}
	if app == nil {
		return nil, logical.CodedError(http.StatusConflict, fmt.Sprintf(
			"connection %q uses app %q, which no longer exists: write app/%s again, or delete config/%s", name, conn.App, conn.App, name))
	}
	app.App, app.Owner, app.SchemaVersion = conn.App, conn.Owner, conn.SchemaVersion
	return app, nil
}

// connectionEntry is what a connection's stored config holds.
func connectionEntry(app, owner string) *providerConfig {
	return &providerConfig{SchemaVersion: configSchemaVersion, App: app, Owner: owner}
}

// saveConnection stores connection name of app, owned by owner, with its
// index entry (the index first: a connection is never unlisted).
func (b *backend) saveConnection(ctx context.Context, s logical.Storage, name, app, owner string) error {
	if err := connectionRefs.save(ctx, s, app+"/"+name, &connectionRef{Owner: owner}); err != nil {
		return err
	}
	if err := configEntries.save(ctx, s, name, connectionEntry(app, owner)); err != nil {
		return err
	}
	b.names.add(name)
	b.connectionIndex(app).add(name)
	return nil
}

// unindexConnection drops name from app's connections.
func (b *backend) unindexConnection(ctx context.Context, s logical.Storage, app, name string) error {
	if err := connectionRefs.delete(ctx, s, app+"/"+name); err != nil {
		return err
	}
	b.connectionIndex(app).remove(name)
	return nil
}

// connectionIndex is app's sorted index of its connections, listed from
// storage on first use; callers know the app exists (or existed).
func (b *backend) connectionIndex(app string) *nameIndex {
	if x, ok := b.connectionIndexes.Load(app); ok {
		return x.(*nameIndex)
	}
	x, _ := b.connectionIndexes.LoadOrStore(app, &nameIndex{list: func(ctx context.Context, s logical.Storage) ([]string, error) {
		return connectionRefs.listUnder(ctx, s, app)
	}})
	return x.(*nameIndex)
}

// listConnections is the sorted names of app's connections.
func (b *backend) listConnections(ctx context.Context, s logical.Storage, app string) ([]string, error) {
	return b.connectionIndex(app).page(ctx, s, "", 0)
}

// saveClient stores cfg, a renewal's config changed by edit (a client
// secret or key promoted, an installation found). A connection's client is
// its app's: edit is applied to the app as stored now, under the app's lock,
// so an operator's app write in between is never undone; edit reports
// whether it still applies there.
func (b *backend) saveClient(ctx context.Context, r renewal, cfg *providerConfig, edit func(*providerConfig) bool) error {
	if r.cfg.App == "" {
		return configEntries.save(ctx, b.storage, r.name, cfg)
	}
	lock := b.appLock(r.cfg.App)
	lock.Lock()
	defer lock.Unlock()
	app, err := appEntries.load(ctx, b.storage, r.cfg.App)
	if err != nil {
		return err
	}
	if app == nil || !edit(app) {
		return fmt.Errorf("app %q changed meanwhile; its stored client is left as the operator wrote it", r.cfg.App)
	}
	return appEntries.save(ctx, b.storage, r.cfg.App, app)
}

// saveKeys stores ring, r's keys after a promotion that the provider
// confirmed. A connection's keys are its app's: stored under the app's lock,
// and only if the app still holds the keys r loaded (an operator's rotation
// in between wins).
func (b *backend) saveKeys(ctx context.Context, r renewal, ring *keyRing) error {
	if r.cfg.App == "" {
		return writeKeyRing(ctx, b.storage, r.name, ring)
	}
	lock := b.appLock(r.cfg.App)
	lock.Lock()
	defer lock.Unlock()
	owner := appKeyOwner(r.cfg.App)
	stored, err := loadKeyRing(ctx, b.storage, owner)
	if err != nil {
		return err
	}
	if stored.active() == nil || stored.active().kid != r.cfg.keys.active().kid || stored.pending() == nil || stored.pending().kid != r.cfg.keys.pending().kid {
		return fmt.Errorf("app %q's keys changed meanwhile; they are left as the operator wrote them", r.cfg.App)
	}
	if err := writeKeyRing(ctx, b.storage, owner, ring); err != nil {
		return err
	}
	b.keysChanged(owner, r.cfg.withKeys(ring))
	return nil
}

// appChanged brings app's connections in line after its client changed
// from old to cfg: what reads need of it (refresh_ahead, the grant...) is
// republished for the connections loaded here, and where the change makes
// a cached token no longer fit the request (scopes, audience...), every
// connection's cached token is dropped, its chain kept; new bounds on
// narrowing drop their narrowed tokens. A change of
// client (dropsTokenState) is refused before this, while connections exist.
func (b *backend) appChanged(ctx context.Context, s logical.Storage, app string, old, cfg *providerConfig) error {
	settings, dropToken := settingsOf(cfg), cfg.changeFrom(old) == dropsAccessToken
	// New bounds: the connections' narrowed tokens go (connectionChanged).
	bounds := !reflect.DeepEqual(old.narrowingBounds(), cfg.narrowingBounds())
	if settingsOf(old) == settings && !dropToken && !bounds {
		return nil // a rotated secret, a timeout: nothing a connection holds
	}
	names, err := b.listConnections(ctx, s, app)
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := b.connectionChanged(ctx, s, name, settings, dropToken); err != nil {
			return err
		}
	}
	return nil
}

// connectionChanged applies an app change to connection name, under its lock.
func (b *backend) connectionChanged(ctx context.Context, s logical.Storage, name string, settings chainSettings, dropToken bool) error {
	lock := b.lockFor(name)
	lock.Lock()
	defer lock.Unlock()
	b.dropVariants(name) // the app's bounds may have changed
	snap := b.loaded(name)
	if snap == nil {
		if !dropToken {
			return nil // loaded from storage, with the new app, on first use
		}
		st, err := loadState(ctx, s, name)
		if err != nil || st == nil || st.AccessToken == "" {
			return err
		}
		return stateEntries.save(ctx, s, name, st.withoutAccessToken())
	}
	next := snap.with(func(n *snapshot) { n.settings = settings })
	if !dropToken || next.state == nil || next.state.AccessToken == "" {
		b.publish(name, next)
		return nil
	}
	_, err := b.save(ctx, s, name, next.withState(next.state.withoutAccessToken()))
	return err
}

// forgetLoaded drops every loaded snapshot, keeping states not yet saved:
// another node changed an app, and the snapshots of its connections
// (unknown here without a listing) may hold its old settings.
func (b *backend) forgetLoaded() {
	b.entries.Range(func(name, e any) bool {
		if s := e.(*nameEntry).snap.Load(); s != nil && !s.dirty {
			b.forget(name.(string))
		}
		return true
	})
}

// connectionReadFields is what a read of a connection's config shows: its
// app, owner and chain; the client is read at app/<app>.
func connectionReadFields(cfg *providerConfig, state *tokenState) map[string]any {
	data := map[string]any{
		"app":                 cfg.App,
		"refresh_token_set":   state != nil && state.RefreshToken != "",
		"needs_refresh_token": state != nil && state.NeedsRefreshToken,
		"schema_version":      cfg.SchemaVersion,
	}
	if cfg.Owner != "" {
		data["owner"] = cfg.Owner
	}
	return data
}

// connectionRenewal is what an authorization connects: name's renewal or,
// for a user's own connection (self), its app's client for name, made or
// not yet. A name held by anything but that user's connection of that app
// is refused. Callers hold the name's lock.
func (b *backend) connectionRenewal(ctx context.Context, s logical.Storage, name string, self selfConnection) (renewal, error) {
	if self.Owner == "" {
		return b.configured(ctx, s, name)
	}
	stored, err := configEntries.load(ctx, s, name)
	if err != nil {
		return renewal{}, err
	}
	if stored != nil {
		if stored.App != self.App || stored.Owner != self.Owner {
			return renewal{}, logical.CodedError(http.StatusConflict, fmt.Sprintf(
				"config %q exists and is not your connection of app %q; nothing was changed", name, self.App))
		}
		return b.configured(ctx, s, name)
	}
	app, err := loadApp(ctx, s, self.App)
	if err != nil {
		return renewal{}, err
	}
	if app == nil {
		return renewal{}, logical.CodedError(http.StatusNotFound, fmt.Sprintf("no app named %q", self.App))
	}
	app.App, app.Owner = self.App, self.Owner
	snap := newSnapshot(app, nil)
	snap.counters = b.counters(name)
	return b.beginRenewal(ctx, s, name, snap, &coldConfig{snap: snap, cfg: app})
}
