package tokenbroker

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathApp(b *backend) []*framework.Path {
	appName := &framework.FieldSchema{Type: framework.TypeString, Description: "Name of the app whose signing keys these are."}
	return append(keyPaths(b, "app/(?P<name>[^/]+)/key", "app-key", appName, b.appKeys), []*framework.Path{
		{
			Pattern:      "app/?$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "tokenbroker", OperationSuffix: "apps"},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{Callback: b.pathAppList, Summary: "List the apps."},
			},
			HelpSynopsis:    "List apps.",
			HelpDescription: "Lists the names of every app/<app>, sorted.",
		},
		{
			Pattern:      "app/" + framework.GenericNameRegex("name") + "/connections/?$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "tokenbroker", OperationSuffix: "app-connections"},
			Fields: withFieldSchemas(map[string]*framework.FieldSchema{
				"name": {Type: framework.TypeString, Description: "Name of the app."},
			}, listFields),
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{Callback: b.pathAppConnectionsList,
					Summary: "List an app's connections, a page at a time with after and limit, with each one's owner and account."},
			},
			HelpSynopsis:    "List the connections of an app.",
			HelpDescription: appConnectionsHelp,
		},
		{
			Pattern:        "app/" + framework.GenericNameRegex("name") + "$",
			DisplayAttrs:   &framework.DisplayAttributes{OperationPrefix: "tokenbroker", OperationSuffix: "app"},
			Fields:         appFields,
			ExistenceCheck: b.pathAppExists,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.CreateOperation: &framework.PathOperation{Callback: b.pathAppWrite, Summary: "Create an app: an OAuth client whose connections hold one chain each."},
				logical.UpdateOperation: &framework.PathOperation{Callback: b.pathAppWrite, Summary: "Update an app; fields not given keep their values. Every connection uses the change."},
				logical.ReadOperation:   &framework.PathOperation{Callback: b.pathAppRead, Summary: "Read an app (never its secrets)."},
				logical.DeleteOperation: &framework.PathOperation{Callback: b.pathAppDelete, Summary: "Delete an app; refused while it has connections unless delete_connections is set."},
			},
			HelpSynopsis:    "An OAuth client shared by many connections (one chain each).",
			HelpDescription: appHelp,
		},
	}...)
}

const appHelp = `
An app is an OAuth client: a config without a chain. It takes every config
field except refresh_token (a connection's seed) and app. Its signing keys
(private_key, generate_key, service_account_json) sign for every connection;
app/<app>/key shows them, app/<app>/key/rotate and /promote rotate them, and
jwks/app/<app> publishes them without a Vault token. Its connections are configs that
name it (config/<name> app=<app>, or made by users through self/<app>/...):
each holds only its chain and owner and uses the app's client, so rotating the
app's client_secret, or changing its scopes, is one write for all of them.
A write that changes the client itself (provider, token_url, client_id...)
is refused while connections exist: their chains belong to the old client.
Deleting an app with connections needs delete_connections=true, which deletes
them too.
`

const appConnectionsHelp = `
Lists the names of the app's connections, sorted; after and limit page
through them. key_info gives each one's owner (the Vault entity that
connected it through self/, empty for one an operator made) and when it was
connected, and by whom.
`

// appRefused are the config fields an app does not take: a chain's seed
// and a connection's app.
func appRefused(f configField) bool {
	return f.step == asSeed || f.step == asConnection
}

// appFields are app/<app>'s schemas: the app's name, every config field an
// app takes, and delete_connections.
var appFields = func() map[string]*framework.FieldSchema {
	out := map[string]*framework.FieldSchema{
		"name": {Type: framework.TypeString, Description: fmt.Sprintf("Name of the app; letters, digits, '-', '_' and '.', at most %d.", maxAppName)},
		"delete_connections": {Type: framework.TypeBool, Query: true,
			Description: "On delete: delete the app's connections (their chains and tokens) too."},
	}
	for _, f := range configFieldTable {
		if !appRefused(f) {
			out[f.name] = f.schema
		}
	}
	return out
}()

// appNameField returns the validated app name from the path.
func appNameField(d *framework.FieldData) (string, error) {
	app, _, err := field[string](d, "name")
	if err != nil {
		return "", err
	}
	return app, validAppName(app)
}

func (b *backend) pathAppExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	app, err := appNameField(d)
	if err != nil {
		return false, nil // the handler reports the bad name
	}
	cfg, err := appEntries.load(ctx, req.Storage, app)
	return cfg != nil, err
}

func (b *backend) pathAppList(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	apps, err := appEntries.list(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	slices.Sort(apps)
	return logical.ListResponse(apps), nil
}

func (b *backend) pathAppRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	app, err := appNameField(d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	cfg, err := loadApp(ctx, req.Storage, app)
	if err != nil || cfg == nil {
		return nil, err
	}
	data := cfg.readFields(nil)
	for _, f := range configFieldTable {
		if appRefused(f) {
			delete(data, cmp.Or(f.readAs, f.name)) // a chain's, not the client's
		}
	}
	delete(data, "needs_refresh_token")
	return &logical.Response{Data: data}, nil
}

func (b *backend) pathAppWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	app, err := appNameField(d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	var refused []string
	for _, f := range configFieldTable {
		if _, sent := d.Raw[f.name]; sent && appRefused(f) {
			refused = append(refused, f.name)
		}
	}
	if len(refused) > 0 {
		return logical.ErrorResponse("an app does not take %s: a seed refresh_token belongs to a connection (config/<name> app=%s refresh_token=...); nothing was changed",
			strings.Join(refused, ", "), app), nil
	}
	if !b.WriteSafeReplicationState() {
		return nil, logical.ErrReadOnly
	}
	lock := b.appLock(app)
	lock.Lock()
	old, cfg, resp, err := b.writeApp(ctx, req.Storage, app, d)
	lock.Unlock()
	if resp != nil || err != nil || old == nil {
		return resp, err
	}
	// Outside the app's lock: a connection's lock is taken before its app's.
	if err := b.appChanged(ctx, req.Storage, app, old, cfg); err != nil {
		return nil, fmt.Errorf("app %q is saved, but its connections were not all updated (their next renewal uses the new client): %w", app, err)
	}
	return nil, nil
}

// writeApp applies d to app and stores it; old is the app before (nil: new).
// Callers hold the app's lock. A refusal is a response; nothing is stored then.
func (b *backend) writeApp(ctx context.Context, s logical.Storage, app string, d *framework.FieldData) (old, cfg *providerConfig, resp *logical.Response, err error) {
	old, err = loadApp(ctx, s, app)
	if err != nil {
		return nil, nil, nil, err
	}
	cfg = newProviderConfig()
	if old != nil {
		copied := *old
		cfg = &copied
		cfg.SchemaVersion = configSchemaVersion
	}
	if err := b.applyWrite(ctx, app, cfg, d, old == nil); err != nil {
		return nil, nil, logical.ErrorResponse(err.Error()), nil
	}
	// An app may need what only its connections bring: a seed refresh token.
	if err := cfg.validate(false); err != nil && cfg.validate(true) != nil {
		return nil, nil, logical.ErrorResponse("app %q: %s", app, err), nil
	}
	if _, err := b.httpClient(cfg.CAPEM); err != nil {
		return nil, nil, logical.ErrorResponse(err.Error()), nil
	}
	if old != nil && cfg.changeFrom(old) == dropsTokenState {
		names, err := b.listConnections(ctx, s, app)
		if err != nil {
			return nil, nil, nil, err
		}
		if len(names) > 0 {
			return nil, nil, logical.ErrorResponse("this write changes the client of app %q (its provider, endpoints, client id, API key or signer), and its %d connections hold chains of the old client: delete them (delete_connections=true on delete), or make a new app; nothing was changed",
				app, len(names)), nil
		}
	}
	if old == nil || old.keys != cfg.keys {
		if err := writeKeyRing(ctx, s, appKeyOwner(app), cfg.keys); err != nil {
			return nil, nil, nil, err
		}
	}
	if err := appEntries.save(ctx, s, app, cfg); err != nil {
		return nil, nil, nil, err
	}
	b.keysChanged(appKeyOwner(app), cfg)
	b.refreshLog.Info("app written", "app", app, "new", old == nil)
	return old, cfg, nil, nil
}

func (b *backend) pathAppDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	app, err := appNameField(d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	withConnections, _, err := field[bool](d, "delete_connections")
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	if !b.WriteSafeReplicationState() {
		return nil, logical.ErrReadOnly
	}
	lock := b.appLock(app)
	lock.Lock()
	names, err := b.listConnections(ctx, req.Storage, app)
	if err == nil && len(names) > 0 && !withConnections {
		lock.Unlock()
		return logical.ErrorResponse("app %q has %d connections (LIST app/%s/connections): delete them, or delete the app with delete_connections=true; nothing was changed",
			app, len(names), app), nil
	}
	if err == nil {
		err = appEntries.delete(ctx, req.Storage, app) // no connection is made after this (writeConnection)
	}
	if err == nil {
		err = writeKeyRing(ctx, req.Storage, appKeyOwner(app), nil)
		b.keysChanged(appKeyOwner(app), nil)
	}
	lock.Unlock()
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		if err := b.deleteConfig(ctx, req.Storage, name); err != nil {
			return nil, fmt.Errorf("app %q is deleted, but not all its connections (delete the rest at config/<name>): %w", app, err)
		}
	}
	b.refreshLog.Info("app deleted", "app", app, "connections", len(names))
	return nil, nil
}

func (b *backend) pathAppConnectionsList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	app, err := appNameField(d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	after, limit, err := pageFields(d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	// An app that does not exist lists nothing, and gets no index.
	if stored, err := appEntries.load(ctx, req.Storage, app); err != nil || stored == nil {
		return logical.ListResponse(nil), err
	}
	names, err := b.connectionIndex(app).page(ctx, req.Storage, after, limit)
	if err != nil {
		return nil, err
	}
	info := make(map[string]any, len(names))
	for _, name := range names {
		st, err := b.currentState(ctx, req.Storage, name)
		if err != nil {
			return nil, err
		}
		info[name] = connectionInfo(ctx, req.Storage, name, st)
	}
	return logical.ListResponseWithInfo(names, info), nil
}

// connectionInfo is what LIST app/<app>/connections says of one connection.
func connectionInfo(ctx context.Context, s logical.Storage, name string, st *tokenState) map[string]any {
	info := map[string]any{"owner": "", "connected_at": "", "connected_by": "", "account_subject": "", "account_email": ""}
	if ref, err := configEntries.load(ctx, s, name); err == nil && ref != nil {
		info["owner"] = ref.Owner
	}
	if st != nil && st.Connected != nil {
		c := st.Connected
		info["connected_at"], info["connected_by"] = c.At.UTC().Format(time.RFC3339), c.By
		info["account_subject"], info["account_email"] = c.Subject, c.Email
	}
	return info
}
