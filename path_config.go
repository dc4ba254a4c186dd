package tokenbroker

import (
	"context"
	"slices"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathConfig(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "config/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "tokenbroker",
				OperationSuffix: "configs",
			},
			Fields: listFields,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback: b.pathNamesList,
					Summary:  "List the names of all provider configs, a page at a time with after and limit.",
				},
			},
			HelpSynopsis:    "List provider configs.",
			HelpDescription: "Lists the names of every config/<name> entry, sorted; after and limit page through them.",
		},
		{
			Pattern: "config/" + framework.MatchAllRegex("name"),
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "tokenbroker",
				OperationSuffix: "config",
			},
			Fields:         configFields,
			ExistenceCheck: b.pathConfigExists,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.CreateOperation: &framework.PathOperation{Callback: b.pathConfigWrite, Summary: "Create a provider config."},
				logical.UpdateOperation: &framework.PathOperation{Callback: b.pathConfigWrite, Summary: "Update a provider config; fields not given keep their values."},
				logical.ReadOperation:   &framework.PathOperation{Callback: b.pathConfigRead, Summary: "Read a provider config (never its secrets)."},
				logical.DeleteOperation: &framework.PathOperation{Callback: b.pathConfigDelete, Summary: "Delete a provider config and its token state."},
			},
			HelpSynopsis:    "Configure one provider: its token endpoint, dialect and credentials.",
			HelpDescription: configHelp,
		},
	}
}

const configHelp = `
A config names one token endpoint and the long-lived credentials it takes.
provider picks the wire dialect (oauth2, oauth2_json, echo360, apivideo,
endorsed); auth_style and encoding override its defaults. Secrets
(client_secret, api_key, refresh_token) are write-only: a read says only
whether each is set. Writing changed credentials drops the cached token;
writing refresh_token starts a new refresh chain from that seed.
`

// allowedValues is a field's AllowedValues from the list that validates it.
func allowedValues[T ~string](values []T) []any {
	out := make([]any, len(values))
	for i, v := range values {
		out[i] = string(v)
	}
	return out
}

// oneOf lists values for a message: "a, b or c".
func oneOf[T ~string](values []T) string {
	s := make([]string, len(values))
	for i, v := range values {
		s[i] = string(v)
	}
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

func (b *backend) pathConfigExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	name, err := nameField(d)
	if err != nil {
		return false, nil // the handler reports the bad name
	}
	cfg, err := loadConfig(ctx, req.Storage, name)
	return cfg != nil, err
}

func (b *backend) pathConfigRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := nameField(d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	cfg, err := loadConfig(ctx, req.Storage, name)
	if err != nil || cfg == nil {
		return nil, err
	}
	state, err := b.currentState(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if cfg.App != "" {
		return &logical.Response{Data: connectionReadFields(cfg, state)}, nil
	}
	return &logical.Response{Data: cfg.readFields(state)}, nil
}

// writeConnection makes connection name of an app, or seeds its chain: its
// entry holds the app's name alone, so the write takes app and
// refresh_token and nothing of the client, which is the app's (app.go).
// old is the connection's config, resolved, or nil.
func (b *backend) writeConnection(ctx context.Context, s logical.Storage, d *framework.FieldData, name string, old *providerConfig) (*logical.Response, error) {
	app, _, err := field[string](d, "app")
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	app = strings.TrimSpace(app)
	switch {
	case old != nil && old.App == "":
		return logical.ErrorResponse("config %q holds its own client; delete it before making it a connection of app %q", name, app), nil
	case old != nil && app != "" && app != old.App:
		return logical.ErrorResponse("config %q is a connection of app %q, and a connection's app is fixed: delete it and connect again", name, old.App), nil
	case old != nil:
		app = old.App
	}
	if err := validAppName(app); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	var client []string
	for key := range d.Raw {
		if _, known := configFields[key]; known && key != "name" && key != "app" && key != "refresh_token" {
			client = append(client, key)
		}
	}
	if len(client) > 0 {
		slices.Sort(client)
		return logical.ErrorResponse("%s: a connection takes its client from app %q; write these to app/%s", strings.Join(client, ", "), app, app), nil
	}
	seed, _, err := field[string](d, "refresh_token")
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	appLock := b.appLock(app) // an app is not deleted while a connection of it is made
	appLock.RLock()
	defer appLock.RUnlock()
	cfg := old
	if cfg == nil {
		stored, err := loadApp(ctx, s, app)
		if err != nil {
			return nil, err
		}
		if stored == nil {
			return logical.ErrorResponse("no app named %q: write app/%s first", app, app), nil
		}
		stored.App = app
		cfg = stored
	}
	state, err := b.currentState(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if seed = strings.TrimSpace(seed); seed != "" {
		state = carryEvents(state, &tokenState{RefreshToken: seed}) // a new chain replaces the old one; events not yet queued stay
	}
	if err := cfg.validate(state != nil && state.RefreshToken != ""); err != nil {
		return logical.ErrorResponse("connection %q of app %q: %s", name, app, err), nil
	}
	if old == nil {
		if err := b.saveConnection(ctx, s, name, app, ""); err != nil {
			return nil, err
		}
	}
	next := newSnapshot(cfg, state)
	next.counters = b.counters(name)
	if loaded := b.loaded(name); loaded != nil {
		next.health = loaded.health
	}
	if _, err := b.save(ctx, s, name, next); err != nil {
		b.forget(name)
		return nil, err
	}
	return nil, nil
}

func (b *backend) pathConfigWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := nameField(d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	lock := b.lockFor(name)
	lock.Lock()
	defer lock.Unlock()
	defer b.dropVariants(name) // narrowed tokens were checked against the old bounds

	old, err := loadConfig(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if old == nil {
		if err := b.commitTombstoneBeforeCreate(ctx, req.Storage, name); err != nil { // webhook.go
			return nil, err
		}
	}
	if _, appSent := d.Raw["app"]; appSent || (old != nil && old.App != "") {
		return b.writeConnection(ctx, req.Storage, d, name, old)
	}
	cfg := newProviderConfig()
	if old != nil {
		copied := *old
		cfg = &copied
		cfg.SchemaVersion = configSchemaVersion
	}
	seed, _, err := field[string](d, "refresh_token")
	if err == nil {
		seed = strings.TrimSpace(seed)
		err = b.applyWrite(ctx, name, cfg, d, old == nil) // config_fields.go
	}
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	state, err := b.currentState(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	current := state
	change := keepsTokens
	if old != nil {
		change = cfg.changeFrom(old) // config_fields.go: what each changed field drops
	}
	if change == dropsTokenState {
		state = nil // tokens and chains of other credentials are worthless here
	}
	if seed != "" {
		state = &tokenState{RefreshToken: seed} // a new chain replaces the old one
	}
	if err := cfg.validate(state != nil && state.RefreshToken != ""); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	state = carryEvents(current, state) // webhook.go: events not yet queued stay
	if _, err := b.httpClient(cfg.CAPEM); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	if state != nil && seed == "" && change == dropsAccessToken {
		state = state.withoutAccessToken()
	}

	if old == nil || old.keys != cfg.keys {
		if err := writeKeyRing(ctx, req.Storage, name, cfg.keys); err != nil {
			return nil, err
		}
	}
	if err := configEntries.save(ctx, req.Storage, name, cfg); err != nil {
		return nil, err
	}
	b.keysChanged(name, cfg)
	b.names.add(name)
	next := newSnapshot(cfg, state)
	next.counters = b.counters(name)
	if old := b.loaded(name); old != nil {
		next.health = old.health // counters survive a config edit
	}
	if _, err := b.save(ctx, req.Storage, name, next); err != nil {
		// The config is stored but the token state is not what it must be:
		// forget the snapshot so the next read reloads from storage.
		b.forget(name)
		return nil, err
	}
	return nil, nil
}

func (b *backend) pathConfigDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := nameField(d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	return nil, b.deleteConfig(ctx, req.Storage, name)
}

// deleteConfig deletes name's config and everything of it: token state,
// keys, pending authorizations, and a connection's place in its app's index.
func (b *backend) deleteConfig(ctx context.Context, s logical.Storage, name string) error {
	lock := b.lockFor(name)
	lock.Lock()
	defer lock.Unlock()
	return b.deleteConfigLocked(ctx, s, name)
}

// deleteConfigLocked is deleteConfig for a caller that holds name's lock.
func (b *backend) deleteConfigLocked(ctx context.Context, s logical.Storage, name string) error {
	stored, err := configEntries.load(ctx, s, name)
	if err != nil {
		return err
	}
	// connection.deleted is recorded before anything goes, and queued
	// once the config is gone (webhook.go).
	deleted, err := b.recordDelete(ctx, s, name, stored)
	if err != nil {
		return err
	}
	defer b.forget(name)
	b.sched.remove(name)
	b.names.remove(name)
	if err := stateEntries.delete(ctx, s, name); err != nil {
		return err
	}
	if err := keyEntries.delete(ctx, s, name); err != nil {
		return err
	}
	b.keysChanged(name, nil)
	if err := deleteAuthorizations(ctx, s, name); err != nil {
		return err
	}
	if err := configEntries.delete(ctx, s, name); err != nil {
		return err
	}
	if deleted != nil {
		b.commitDelete(ctx, s, name, deleted)
	}
	if stored != nil && stored.App != "" {
		return b.unindexConnection(ctx, s, stored.App, name)
	}
	return nil
}
