package tokenbroker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// A user's own connections (self/<app>/...): each is bound to the Vault
// entity that started it, never to whoever follows its authorization link;
// the account it connects is read from the provider and shown, and an app
// may require that account to be the Vault user's (identity_match).

// Values of identity_match; "" means none.
const (
	identityMatchNone  = "none"
	identityMatchEmail = "email"
)

// selfConnection is the connection a user makes for themselves through
// self/<app>/...: the app, and the Vault entity that owns it. The zero value
// is an authorization of an existing config (authorize/<name>).
type selfConnection struct {
	App   string `json:"app,omitempty"`
	Owner string `json:"owner,omitempty"`
}

// selfName is the name of entity's connection of app: <app>.<entity id>,
// so operators and templated policies reach it through the ordinary paths
// (creds/<app>.{{identity.entity.id}}).
func selfName(app, entity string) string { return app + "." + entity }

// callerEntity is the Vault entity of the caller, or a 400 for a token
// without one: nothing under self/ belongs to nobody.
func callerEntity(req *logical.Request) (string, error) {
	if req.EntityID == "" {
		return "", logical.CodedError(http.StatusBadRequest,
			"self/ serves a Vault user's own connections, and this token has no entity (a root token, or one made without an identity): log in with an auth method (userpass, OIDC, LDAP...), or use the config/, creds/ and status/ paths")
	}
	if err := validName(selfName("a", req.EntityID)); err != nil {
		return "", logical.CodedError(http.StatusBadRequest, fmt.Sprintf("entity id %q cannot name a connection", req.EntityID))
	}
	return req.EntityID, nil
}

// completeConnection makes tok the start of r's chain once the account it
// connects is known and, for a user's own connection under
// identity_match=email, is the user's: a mismatch stores nothing and the
// token is revoked at the provider where it can be. A user's first
// connection of an app is stored here, its owner the one who started it.
// Callers hold the name's lock.
func (b *backend) completeConnection(ctx context.Context, s logical.Storage, r renewal, self selfConnection, tok obtained, conn connection) error {
	acct, err := b.connectedAccount(ctx, r, tok.AccessToken)
	mustMatch := self.Owner != "" && r.cfg.IdentityMatch == identityMatchEmail
	switch {
	case err == nil && mustMatch:
		err = b.matchIdentity(self.Owner, acct)
	case err != nil && !mustMatch:
		// The account is shown where it can be read; the chain is kept.
		b.refreshLog.Warn("the connected account could not be read; connecting without it", "name", r.name, "error", err)
		err = nil
	}
	if err != nil {
		b.revokeUnkept(ctx, r, tok)
		b.recordOutcome(r.name, "refused: "+err.Error())
		return logical.CodedError(http.StatusForbidden, err.Error()+"; nothing was stored")
	}
	conn.Subject, conn.Email = acct.Subject, acct.Email
	if self.Owner != "" {
		if err := b.saveSelfConnection(ctx, s, r.name, self); err != nil {
			b.revokeUnkept(ctx, r, tok)
			return err
		}
	}
	return b.connect(ctx, r, tok, conn)
}

// saveSelfConnection stores self's connection name unless it is stored
// already, under its app's lock: an app deleted meanwhile gets no new
// connection (pathAppDelete lists them under that lock).
func (b *backend) saveSelfConnection(ctx context.Context, s logical.Storage, name string, self selfConnection) error {
	lock := b.appLock(self.App)
	lock.RLock()
	defer lock.RUnlock()
	stored, err := configEntries.load(ctx, s, name)
	if err != nil || stored != nil {
		return err
	}
	if err := b.commitTombstoneBeforeCreate(ctx, s, name); err != nil { // webhook.go
		return err
	}
	app, err := appEntries.load(ctx, s, self.App)
	if err != nil {
		return err
	}
	if app == nil {
		return logical.CodedError(http.StatusNotFound, fmt.Sprintf("app %q was deleted while you connected; nothing was stored", self.App))
	}
	return b.saveConnection(ctx, s, name, self.App, self.Owner)
}

// connectedAccount reads the account accessToken belongs to from the
// provider's userinfo endpoint; the zero Account where it has none.
func (b *backend) connectedAccount(ctx context.Context, r renewal, accessToken string) (provider.Account, error) {
	ep := r.endpoint()
	url := ep.EffectiveUserinfoURL()
	if url == "" {
		return provider.Account{}, nil
	}
	var acct provider.Account
	err := b.send(ctx, r.request(requestUserinfo, url), func(ctx context.Context, c *provider.Client) (err error) {
		acct, err = c.Account(ctx, ep, accessToken)
		return err
	})
	if err != nil {
		return provider.Account{}, fmt.Errorf("the connected account could not be read: %w", err)
	}
	return acct, nil
}

// matchIdentity checks that acct is the Vault user's (entity): its email,
// verified by the provider, is one Vault knows for the entity.
func (b *backend) matchIdentity(entity string, acct provider.Account) error {
	if acct.Email == "" || !acct.EmailVerified {
		return fmt.Errorf("identity_match=email: the account connected (%s) has no email its provider says is verified", accountLabel(acct))
	}
	emails, err := b.entityEmails(entity)
	if err != nil {
		return err
	}
	for _, e := range emails {
		if strings.EqualFold(strings.TrimSpace(e), acct.Email) {
			return nil
		}
	}
	return fmt.Errorf("identity_match=email: the account connected (%s) is not the Vault user's (none of the emails Vault knows for the entity); was the authorization link approved by someone else? Connect your own account", accountLabel(acct))
}

// entityEmails are the email addresses Vault knows for entity: its metadata's
// and its aliases' "email", and alias names that are addresses (OIDC, LDAP
// and userpass aliases are often named by one).
func (b *backend) entityEmails(entity string) ([]string, error) {
	ent, err := b.System().EntityInfo(entity)
	if err != nil {
		return nil, fmt.Errorf("read the Vault entity %s: %w", entity, err)
	}
	if ent == nil {
		return nil, errors.New("the Vault entity that started this connection no longer exists")
	}
	var out []string
	if e := ent.Metadata["email"]; e != "" {
		out = append(out, e)
	}
	for _, a := range ent.Aliases {
		if e := a.Metadata["email"]; e != "" {
			out = append(out, e)
		}
		if strings.Contains(a.Name, "@") {
			out = append(out, a.Name)
		}
	}
	return out, nil
}

// accountLabel names an account in messages: its email, else its subject.
func accountLabel(acct provider.Account) string {
	switch {
	case acct.Email != "":
		return acct.Email
	case acct.Subject != "":
		return "subject " + acct.Subject
	}
	return "unknown"
}

// revokeUnkept revokes, best effort, a token obtained and not kept (RFC
// 7009): the grant the user gave is not left live at the provider.
func (b *backend) revokeUnkept(ctx context.Context, r renewal, tok obtained) {
	if tok.RefreshToken != "" {
		b.revokeQuietly(ctx, r, tok.RefreshToken, provider.HintRefreshToken, "a refresh token obtained and not kept")
	} else {
		b.revokeQuietly(ctx, r, tok.AccessToken, provider.HintAccessToken, "an access token obtained and not kept")
	}
}

// revokeQuietly revokes token (what) at r's revocation endpoint, if it has
// one; a failure is logged: the token was already given up here.
func (b *backend) revokeQuietly(ctx context.Context, r renewal, token string, hint provider.TokenTypeHint, what string) {
	ep := r.endpoint()
	url := ep.EffectiveRevocationURL()
	if url == "" {
		return
	}
	err := b.send(ctx, r.request(requestRevocation, url), func(ctx context.Context, c *provider.Client) error {
		return c.RevokeToken(ctx, ep, token, hint)
	})
	if err != nil {
		b.refreshLog.Warn("could not revoke "+what+" at the provider", "name", r.name, "error", err)
	}
}

// connectedAccountLabel is " to the account <email or subject>" for name's
// connected account, as the published snapshot holds it, or "".
func (b *backend) connectedAccountLabel(name string) string {
	snap := b.loaded(name)
	if snap == nil || snap.state == nil || snap.state.Connected == nil {
		return ""
	}
	c := snap.state.Connected
	if c.Email == "" && c.Subject == "" {
		return ""
	}
	return " to the account " + accountLabel(provider.Account{Subject: c.Subject, Email: c.Email})
}
