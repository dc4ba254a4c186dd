package tokenbroker

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// Roles: a named, fixed narrowing of one config's tokens (or a
// connection's: config names either), or of an app's (each caller's own
// connection, as self/<app> reads it), and optionally an RFC 8693 exchange
// (token_exchange.go). role/<role>/creds returns the role's token, so a
// team's policy is one path: path "tokenbroker/role/reporting/creds"
// { capabilities = ["read"] }. The token is a variant of the config's,
// cached like every narrowed token (variants.go).

const rolePrefix = "role/"

// roleEntry is one stored role/<role>.
type roleEntry struct {
	// Config or App: whose tokens the role narrows; one of them.
	Config        string            `json:"config,omitempty"`
	App           string            `json:"app,omitempty"`
	Scopes        []string          `json:"scope,omitempty"`
	Audiences     []string          `json:"audience,omitempty"`
	Resources     []string          `json:"resource,omitempty"`
	Repositories  []string          `json:"repositories,omitempty"`
	RepositoryIDs []int64           `json:"repository_ids,omitempty"`
	Permissions   map[string]string `json:"permissions,omitempty"`
	Exchange      *roleExchange     `json:"exchange,omitempty"`
}

// narrowing is what the role asks of its config's tokens.
func (r *roleEntry) narrowing() provider.Narrowing {
	return provider.Narrowing{Scopes: r.Scopes, Audiences: r.Audiences, Resources: r.Resources,
		Repositories: r.Repositories, RepositoryIDs: r.RepositoryIDs, Permissions: r.Permissions}
}

// variant is the role's variant of its config's token; nil for a role that
// neither narrows nor exchanges: it serves the config's own token.
func (r *roleEntry) variant() *variantRequest {
	n := r.narrowing()
	if n.IsZero() && r.Exchange == nil {
		return nil
	}
	return newVariantRequest(n, r.Exchange)
}

// loadedRole is a role in memory: its entry and variant, so a cached read of
// role/<role>/creds touches no storage.
type loadedRole struct {
	entry *roleEntry
	vr    *variantRequest
}

// roleCache holds the roles read: role name -> *loadedRole. Writes, deletes
// and invalidations drop a role's.
type roleCache struct{ m sync.Map }

func (c *roleCache) forget(role string) { c.m.Delete(role) }

// roleChanged drops role from memory after a write or delete; a load that
// raced the change is not kept (b.role's epoch).
func (b *backend) roleChanged(role string) {
	b.invalidations.Add(1)
	b.roles.forget(role)
}

// role is role's entry and variant, from memory or storage (nil: no role).
func (b *backend) role(ctx context.Context, s logical.Storage, role string) (*loadedRole, error) {
	if r, ok := b.roles.m.Load(role); ok {
		return r.(*loadedRole), nil
	}
	epoch := b.invalidations.Load()
	entry, err := roleEntries.load(ctx, s, role)
	if err != nil || entry == nil {
		return nil, err
	}
	r := &loadedRole{entry: entry, vr: entry.variant()}
	if b.invalidations.Load() == epoch {
		b.roles.m.Store(role, r)
	}
	return r, nil
}

var roleNameField = &framework.FieldSchema{Type: framework.TypeString, Description: "Name of the role; letters, digits, '-', '_' and '.'."}

func pathRole(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern:      "role/?$",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "tokenbroker", OperationSuffix: "roles"},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ListOperation: &framework.PathOperation{Callback: b.pathRoleList, Summary: "List the roles."},
		},
		HelpSynopsis:    "List roles.",
		HelpDescription: "Lists the names of every role/<role>, sorted.",
	}, {
		// Before role/<role>: paths match in order, and a role's name never holds '/'.
		Pattern:      "role/(?P<name>[^/]+)/creds$",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "tokenbroker", OperationSuffix: "role-creds"},
		Fields: map[string]*framework.FieldSchema{
			"name":    roleNameField,
			"min_ttl": {Type: framework.TypeDurationSecond, Query: true, Description: "Renew the token if it has less than this left."},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{Callback: b.pathRoleCredsRead, Summary: "Return the role's token: its config's, narrowed (or exchanged) as the role says."},
		},
		HelpSynopsis:    "The token of a role.",
		HelpDescription: roleHelp,
	}, {
		Pattern:        "role/" + framework.GenericNameRegex("name") + "$",
		DisplayAttrs:   &framework.DisplayAttributes{OperationPrefix: "tokenbroker", OperationSuffix: "role"},
		Fields:         roleFields,
		ExistenceCheck: b.pathRoleExists,
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.CreateOperation: &framework.PathOperation{Callback: b.pathRoleWrite, Summary: "Create a role: a fixed narrowing of a config's tokens."},
			logical.UpdateOperation: &framework.PathOperation{Callback: b.pathRoleWrite, Summary: "Update a role; fields not given keep their values."},
			logical.ReadOperation:   &framework.PathOperation{Callback: b.pathRoleRead, Summary: "Read a role."},
			logical.DeleteOperation: &framework.PathOperation{Callback: b.pathRoleDelete, Summary: "Delete a role (its config and tokens stay)."},
		},
		HelpSynopsis:    "A named narrowing of a config's tokens, for a policy to name.",
		HelpDescription: roleHelp,
	}}
}

const roleHelp = `
A role binds a config (or a connection, by its config name), or an app (each
caller's own connection of it, as self/<app>), to a fixed narrowing: scope, audience, resource (RFC 8707), and for github_app
repositories, repository_ids and permissions, each within the config's
allowed_scopes, allowed_audiences, allowed_resources (GitHub: its
repositories and permissions). With exchange=true the role's token is
obtained by RFC 8693 token exchange of the config's access token at its
provider (subject_token_type access_token, or id_token: the ID token an
OpenID provider issued with the chain's tokens; requested_token_type optional).
Read role/<role>/creds for the token: a policy granting read on that one
path gives a team exactly that token. Tokens are cached per distinct
narrowing, like the config's own.
`

// roleFields are role/<role>'s schemas: the narrowing's, as a read takes
// them, the config and the exchange.
var roleFields = withFieldSchemas(map[string]*framework.FieldSchema{
	"name":   roleNameField,
	"config": {Type: framework.TypeString, Description: "The config (or connection) whose tokens the role narrows. One of config or app."},
	"app": {Type: framework.TypeString,
		Description: "The app whose tokens the role narrows: each caller reads their own connection of it, as self/<app> does. One of config or app."},
	"exchange": {Type: framework.TypeBool,
		Description: "Obtain the role's token by RFC 8693 token exchange of the config's access token at its provider, with the role's scope, audience and resource."},
	"subject_token_type": {Type: framework.TypeString, Default: "access_token", AllowedValues: []any{"access_token", "id_token"},
		Description: "With exchange: the token presented, the config's access_token, or the id_token its provider issued with the chain's tokens (OpenID Connect, the openid scope)."},
	"requested_token_type": {Type: framework.TypeString,
		Description: "With exchange: the token type asked for (RFC 8693 §3): access_token, id_token, jwt, refresh_token, or a token type URI. Default: the provider's choice."},
}, roleNarrowingFields())

// roleNarrowingFields are the narrowing read parameters as role fields.
func roleNarrowingFields() map[string]*framework.FieldSchema {
	out := map[string]*framework.FieldSchema{}
	for k, f := range narrowingFields {
		g := *f
		g.Query = false
		g.Description = strings.Replace(f.Description, "Narrowed read", "The role's token", 1)
		out[k] = &g
	}
	return out
}

func roleName(d *framework.FieldData) (string, error) {
	name, err := nameField(d)
	if err != nil {
		return "", logical.CodedError(http.StatusBadRequest, strings.Replace(err.Error(), "name", "role name", 1))
	}
	return name, nil
}

func (b *backend) pathRoleExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	name, err := roleName(d)
	if err != nil {
		return false, nil
	}
	r, err := roleEntries.load(ctx, req.Storage, name)
	return r != nil, err
}

func (b *backend) pathRoleList(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	names, err := roleEntries.list(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	return logical.ListResponse(names), nil
}

func (b *backend) pathRoleRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := roleName(d)
	if err != nil {
		return nil, err
	}
	r, err := roleEntries.load(ctx, req.Storage, name)
	if err != nil || r == nil {
		return nil, err
	}
	data := map[string]any{"exchange": r.Exchange != nil}
	for key, v := range map[string]any{"config": r.Config, "app": r.App, "scope": r.Scopes, "audience": r.Audiences, "resource": r.Resources,
		"repositories": r.Repositories, "repository_ids": r.RepositoryIDs, "permissions": r.Permissions} {
		if !isEmpty(v) {
			data[key] = v
		}
	}
	if x := r.Exchange; x != nil {
		data["subject_token_type"] = x.SubjectTokenType
		if x.RequestedTokenType != "" {
			data["requested_token_type"] = x.RequestedTokenType
		}
	}
	return &logical.Response{Data: data}, nil
}

// pathRoleWrite stores a role after checking it against its config: the
// config exists, the narrowing is usable and within the config's bounds,
// and an exchange is one its provider offers.
func (b *backend) pathRoleWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := roleName(d)
	if err != nil {
		return nil, err
	}
	r, err := roleEntries.load(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		r = &roleEntry{}
	}
	if err := r.apply(d); err != nil {
		return logical.ErrorResponse("role %q: %s", name, err), nil
	}
	cfg, err := r.target(ctx, req.Storage)
	if err != nil {
		return logical.ErrorResponse("role %q: %s", name, err), nil
	}
	n, err := r.narrowing().Canonical()
	if err != nil {
		return logical.ErrorResponse("role %q: %s", name, err), nil
	}
	r.Scopes, r.Audiences, r.Resources, r.Repositories, r.RepositoryIDs, r.Permissions =
		n.Scopes, n.Audiences, n.Resources, n.Repositories, n.RepositoryIDs, n.Permissions
	if err := cfg.checkNarrowing(r.targetName(), n); err != nil {
		return logical.ErrorResponse("role %q: %s", name, err), nil
	}
	if r.Exchange != nil && !cfg.endpoint().CanExchange() {
		return logical.ErrorResponse("role %q: provider %s of %s does not offer token exchange (RFC 8693)", name, cfg.Provider, r.targetName()), nil
	}
	if err := roleEntries.save(ctx, req.Storage, name, r); err != nil {
		return nil, err
	}
	b.roleChanged(name)
	return nil, nil
}

// target is the config (or app) the role narrows, which must exist.
func (r *roleEntry) target(ctx context.Context, s logical.Storage) (*providerConfig, error) {
	switch {
	case (r.Config == "") == (r.App == ""):
		return nil, fmt.Errorf("give one of config or app")
	case r.App != "":
		if err := validAppName(r.App); err != nil {
			return nil, err
		}
		app, err := loadApp(ctx, s, r.App)
		if err == nil && app == nil {
			err = fmt.Errorf("no app named %q", r.App)
		}
		return app, err
	}
	if err := validName(r.Config); err != nil {
		return nil, err
	}
	cfg, err := loadConfig(ctx, s, r.Config)
	if err == nil && cfg == nil {
		err = fmt.Errorf("no config named %q", r.Config)
	}
	return cfg, err
}

// targetName names the role's config or app in messages.
func (r *roleEntry) targetName() string {
	if r.App != "" {
		return "app " + r.App
	}
	return r.Config
}

// apply sets the fields d sends.
func (r *roleEntry) apply(d *framework.FieldData) error {
	for _, f := range []struct {
		key string
		to  *[]string
	}{{"audience", &r.Audiences}, {"resource", &r.Resources}, {"repositories", &r.Repositories}} {
		if v, ok, err := field[[]string](d, f.key); err != nil {
			return err
		} else if ok {
			*f.to = cleanList(v)
		}
	}
	if v, ok, err := field[string](d, "scope"); err != nil {
		return err
	} else if ok {
		if r.Scopes, err = provider.ParseScopes(v); err != nil {
			return err
		}
	}
	if v, ok, err := field[[]int](d, "repository_ids"); err != nil {
		return err
	} else if ok {
		r.RepositoryIDs, _ = repositoryIDs("", v)
	}
	if v, ok, err := field[map[string]string](d, "permissions"); err != nil {
		return err
	} else if ok {
		r.Permissions = v
	}
	for _, f := range []struct {
		key string
		to  *string
	}{{"config", &r.Config}, {"app", &r.App}} {
		if v, ok, err := field[string](d, f.key); err != nil {
			return err
		} else if ok {
			*f.to = strings.TrimSpace(v)
		}
	}
	return r.applyExchange(d)
}

// applyExchange sets the exchange fields d sends.
func (r *roleEntry) applyExchange(d *framework.FieldData) error {
	on, sent, err := field[bool](d, "exchange")
	if err != nil {
		return err
	}
	switch {
	case sent && !on:
		r.Exchange = nil
	case sent && on && r.Exchange == nil:
		r.Exchange = &roleExchange{SubjectTokenType: "access_token"}
	}
	requested, requestedSent, err := field[string](d, "requested_token_type")
	if err != nil {
		return err
	}
	if subject, sent, err := field[string](d, "subject_token_type"); err != nil {
		return err
	} else if sent && subject != "access_token" && subject != "id_token" {
		return fmt.Errorf("subject_token_type %q: access_token (the chain's access token) or id_token (the ID token its provider issued with it)", subject)
	} else if sent && r.Exchange != nil {
		r.Exchange.SubjectTokenType = subject
	}
	if r.Exchange == nil {
		if _, typeSent := d.Raw["subject_token_type"]; requestedSent || typeSent {
			return fmt.Errorf("subject_token_type and requested_token_type need exchange=true")
		}
		return nil
	}
	if requestedSent {
		r.Exchange.RequestedTokenType = strings.TrimSpace(requested)
		if uri := r.Exchange.requested(); uri != "" && !strings.Contains(uri, ":") {
			return fmt.Errorf("requested_token_type %q: access_token, id_token, jwt, refresh_token or a token type URI (RFC 8693 §3)", requested)
		}
	}
	return nil
}

func (b *backend) pathRoleDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := roleName(d)
	if err != nil {
		return nil, err
	}
	if err := roleEntries.delete(ctx, req.Storage, name); err != nil {
		return nil, err
	}
	b.roleChanged(name)
	return nil, nil
}

func (b *backend) pathRoleCredsRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, _ := d.Raw["name"].(string)
	if err := validName(name); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	minTTL, err := minTTLField(d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	r, err := b.role(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, logical.CodedError(http.StatusNotFound, fmt.Sprintf("no role named %q", name))
	}
	if app := r.entry.App; app != "" {
		entity, err := callerEntity(req)
		if err != nil {
			return nil, err
		}
		self := selfConnection{App: app, Owner: entity}
		return b.readCreds(ctx, req.Storage, selfName(app, entity), minTTL, ownedBy(self), r.vr)
	}
	return b.readCreds(ctx, req.Storage, r.entry.Config, minTTL, anyConfig, r.vr)
}
