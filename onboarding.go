package tokenbroker

// Onboarding: a user's authorization starts a name's chain. A browser
// authorization (authorize/<name>) is kept as a pending entry until its code
// comes back (callback, or authorize/<name>/code); a device authorization is
// polled by device.go. Both end in connect, which replaces the chain only
// once the provider has answered with a token.

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

const (
	// authPrefix holds pending authorizations, seal-wrapped: PKCE verifiers
	// and device codes are credentials.
	authPrefix = "auth/"
	codePrefix = authPrefix + "code/" // a pending browser authorization, by name
	// pendingLifetime: how long an authorization URL (its state and verifier) works.
	pendingLifetime = 10 * time.Minute
)

// connection is who started a user's chain (the Vault display name that
// asked for the authorization), and when.
type connection struct {
	At time.Time `json:"at"`
	By string    `json:"by,omitempty"`
	// Subject and Email: the account connected, as the provider's userinfo
	// endpoint names it (empty where it has none).
	Subject string `json:"subject,omitempty"`
	Email   string `json:"email,omitempty"`
	// Params: what the provider's redirect carried that the app needs to
	// call its API (Intuit's realmId); creds reads show them.
	Params map[string]string `json:"params,omitempty"`
}

// redirectParamFields are the fields of the callback and of a pasted code
// that carry a provider's redirect parameters (provider.AllRedirectParams).
func redirectParamFields() map[string]*framework.FieldSchema {
	out := map[string]*framework.FieldSchema{}
	for _, p := range provider.AllRedirectParams() {
		out[p] = &framework.FieldSchema{Type: framework.TypeString, Query: true,
			Description: "Sent back by the provider with the code, for the app (Intuit's realmId: the company connected); creds/<name> shows it."}
	}
	return out
}

// redirectParams reads the redirect parameters from d.
func redirectParams(d *framework.FieldData) map[string]string {
	out := map[string]string{}
	for _, p := range provider.AllRedirectParams() {
		if v, _, _ := field[string](d, p); v != "" {
			out[p] = v
		}
	}
	return out
}

// pendingCode is a browser authorization awaiting its code. The state itself
// is not stored, only its hash: storage never holds what would let a reader
// complete the authorization with a code of their own.
type pendingCode struct {
	StateHash   string    `json:"state_hash"`
	Verifier    string    `json:"verifier"`
	RedirectURI string    `json:"redirect_uri,omitempty"` // as sent: the exchange must repeat it
	ExpiresAt   time.Time `json:"expires_at"`
	RequestedBy string    `json:"requested_by,omitempty"`
	// The user's own connection it makes (self/<app>/authorize), if any:
	// the chain goes to this owner, whoever follows the link.
	selfConnection
}

// onboarding is the backend's in-memory part of onboarding.
type onboarding struct {
	pollers  sync.Map // name -> struct{}: a device poller runs on this node
	outcomes sync.Map // name -> outcome: the last authorization's result on this node
	// wait sleeps d or until ctx ends (false); nil means a real timer. Tests replace it.
	wait  func(ctx context.Context, d time.Duration) bool
	polls sync.WaitGroup
}

// outcome is how an authorization ended, for status/<name>.
type outcome struct {
	at     time.Time
	result string
}

func (b *backend) recordOutcome(name, result string) {
	b.onboard.outcomes.Store(name, outcome{at: b.now(), result: result})
}

// authorizable reports whether a user can start the config's chain.
func (c *providerConfig) authorizable() bool {
	return c.ClientID != "" && (c.AuthURL != "" || c.DeviceURL != "")
}

// validateAuthorization checks the fields of a user's authorization.
func (c *providerConfig) validateAuthorization() error {
	for _, f := range []struct{ key, value string }{
		{"auth_url", c.AuthURL}, {"device_authorization_url", c.DeviceURL}, {"redirect_uri", c.RedirectURI}, {"issuer", c.Issuer},
		{"revocation_url", c.RevocationURL}, {"userinfo_url", c.UserinfoURL},
	} {
		if f.value == "" {
			continue
		}
		if err := provider.CheckURL(f.value); err != nil {
			return fmt.Errorf("%s: %w", f.key, err)
		}
	}
	if c.PKCE != "" && !c.PKCE.Valid() {
		return fmt.Errorf("unknown pkce %q (want S256 or off)", c.PKCE)
	}
	if c.PKCE == provider.PKCEOff && c.endpoint().PKCERequired() {
		return fmt.Errorf("provider %s requires PKCE: pkce=off is not allowed", c.Provider)
	}
	if c.IdentityMatch != "" && c.IdentityMatch != identityMatchNone && c.IdentityMatch != identityMatchEmail {
		return fmt.Errorf("unknown identity_match %q (want none or email)", c.IdentityMatch)
	}
	if c.IdentityMatch == identityMatchEmail && c.endpoint().EffectiveUserinfoURL() == "" {
		return fmt.Errorf("identity_match=email reads the account's email: set userinfo_url (or an issuer whose metadata gives one)")
	}
	if c.ResponseMode != "" && !c.ResponseMode.Valid() {
		return fmt.Errorf("unknown response_mode %q (want form_post or query)", c.ResponseMode)
	}
	for k := range c.AuthParams {
		if k == "response_mode" {
			return fmt.Errorf("auth_params may not set %q: use the response_mode field (form_post or query)", k)
		}
		if provider.AuthReserved(k) {
			return fmt.Errorf("auth_params may not set %q: the authorization request sets it", k)
		}
	}
	return nil
}

// responseMode is how the provider is asked to return the code: the
// config's response_mode; else form_post where the provider supports it (its
// preset documents it, or its issuer's metadata lists it) and redirect_uri is
// a Vault callback; else query. A redirect that does not reach Vault is one
// whose code the user pastes (authorize/<name>/code), and a form POST there
// would leave nothing in the address bar to copy.
func (c *providerConfig) responseMode() provider.ResponseMode {
	switch {
	case c.ResponseMode != "":
		return c.ResponseMode
	case (c.IssuerFormPost || c.endpoint().DocumentsFormPost()) && vaultCallback(c.RedirectURI):
		return provider.ResponseModeFormPost
	}
	return provider.ResponseModeQuery
}

// vaultCallback reports whether redirect names a Vault callback path,
// https://<vault>/v1/<mount>/callback (a proxy's prefix and namespaces allowed).
func vaultCallback(redirect string) bool {
	u, err := url.Parse(redirect)
	return err == nil && strings.Contains(u.Path, "/v1/") && strings.HasSuffix(u.Path, "/"+callbackPath)
}

// errNotConnected says why a name without a chain cannot serve.
func errNotConnected(name string, snap *snapshot) error {
	if snap.settings.authorizable {
		return logical.CodedError(http.StatusBadGateway, fmt.Sprintf(
			"%q is not connected: run vault write tokenbroker/authorize/%s (or device/%s) and approve as the user", name, name, name))
	}
	return fmt.Errorf("config %q holds no refresh token and no credentials for the %s grant", name, snap.settings.baseGrant)
}

// newAuthState returns a state for name: 256 random bits, then the name, so
// the callback finds the pending entry without an index.
func newAuthState(name string) string { return provider.NewSecret() + "." + name }

// stateName is the name a state was made for ("" when malformed).
func stateName(state string) string {
	_, name, ok := strings.Cut(state, ".")
	if !ok || validName(name) != nil {
		return ""
	}
	return name
}

func hashOf(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// beginAuthorization stores a new pending authorization of name, replacing
// any earlier one (whose state then no longer works), and returns the URL the
// user opens and its state.
func (b *backend) beginAuthorization(ctx context.Context, s logical.Storage, name, who string, self selfConnection) (authURL, state string, expires time.Time, err error) {
	lock := b.lockFor(name)
	lock.Lock()
	defer lock.Unlock()
	r, err := b.connectionRenewal(ctx, s, name, self)
	if err != nil {
		return "", "", time.Time{}, err
	}
	if r.cfg.AuthURL == "" || r.cfg.ClientID == "" {
		return "", "", time.Time{}, logical.CodedError(http.StatusBadRequest,
			fmt.Sprintf("config %q needs client_id and auth_url (or an issuer or provider preset that gives one) to authorize in a browser", name))
	}
	ep, mode := r.endpoint(), r.cfg.responseMode()
	state, verifier := newAuthState(name), provider.NewSecret()
	if authURL, err = ep.AuthorizationURLIn(mode, state, verifier); err != nil {
		return "", "", time.Time{}, fmt.Errorf("authorization URL of %q: %w", name, err)
	}
	expires = b.now().Add(pendingLifetime)
	p := pendingCode{StateHash: hashOf(state), Verifier: verifier, RedirectURI: ep.RedirectURI, ExpiresAt: expires, RequestedBy: who, selfConnection: self}
	if err := codeEntries.save(ctx, s, name, &p); err != nil {
		return "", "", time.Time{}, err
	}
	b.refreshLog.Info("authorization started", "name", name, "flow", "browser", "response_mode", mode, "by", who, "expires_at", expires)
	return authURL, state, expires, nil
}

// codeAnswer is what the provider sent back with the user: a code (and the
// redirect parameters the dialect names), or an error.
type codeAnswer struct {
	code, errCode, errDescription string
	params                        map[string]string
}

// pendingMatching reads name's pending browser authorization and reports
// whether state is the one it was issued with (the hashes compared in
// constant time). It only reads storage: nothing is created in memory.
func pendingMatching(ctx context.Context, s logical.Storage, name, state string) (p pendingCode, ok bool, err error) {
	found, err := codeEntries.loadInto(ctx, s, name, &p)
	if err != nil || !found {
		return p, false, err
	}
	return p, subtle.ConstantTimeCompare([]byte(p.StateHash), []byte(hashOf(state))) == 1, nil
}

// finishAuthorization completes name's pending browser authorization. The
// state must be the latest one issued for name; it is burnt (deleted) before
// anything else, so it works once, whatever the outcome. An unknown, replaced
// or used state changes nothing. Only a token from the provider replaces the
// chain. Errors are logical.HTTPCodedError with a message fit for a page.
func (b *backend) finishAuthorization(ctx context.Context, s logical.Storage, name, state string, a codeAnswer) error {
	if !b.WriteSafeReplicationState() {
		return logical.ErrReadOnly
	}
	unknown := func() error {
		return logical.CodedError(http.StatusBadRequest, fmt.Sprintf(
			"this authorization of %s is unknown, already used, or replaced by a newer one; nothing was changed. Start again with vault write tokenbroker/authorize/%s", name, name))
	}
	// The callback is open to anyone: a state that matches no pending
	// authorization is refused before anything per name exists (the name's
	// lock is an entry that lasts, backend.go). A storage read creates nothing.
	if _, ok, err := pendingMatching(ctx, s, name, state); err != nil {
		return err
	} else if !ok {
		return unknown()
	}
	lock := b.lockFor(name)
	lock.Lock()
	defer lock.Unlock()
	// Again under the lock: a concurrent callback may have burnt the state,
	// or a newer authorization replaced it.
	p, ok, err := pendingMatching(ctx, s, name, state)
	if err != nil {
		return err
	} else if !ok {
		return unknown()
	}
	if err := codeEntries.delete(ctx, s, name); err != nil {
		return fmt.Errorf("the authorization of %q could not be marked used, so it was not completed: %w", name, err)
	}
	refuse := func(msg string) error {
		b.recordOutcome(name, msg)
		b.refreshLog.Warn("authorization not completed", "name", name, "reason", msg)
		return logical.CodedError(http.StatusBadRequest, msg+"; the chain is unchanged")
	}
	switch {
	case !b.now().Before(p.ExpiresAt):
		return refuse(fmt.Sprintf("the authorization of %s expired at %s; start again with vault write tokenbroker/authorize/%s",
			name, p.ExpiresAt.UTC().Format(time.RFC3339), name))
	case a.errCode != "":
		return refuse(strings.TrimSuffix(fmt.Sprintf("the provider did not authorize %s: %s: %s", name, provider.CleanText(a.errCode), provider.CleanText(a.errDescription)), ": "))
	case a.code == "":
		return refuse(fmt.Sprintf("the provider sent no code for %s", name))
	}
	r, err := b.connectionRenewal(ctx, s, name, p.selfConnection)
	if err != nil {
		return err
	}
	ep := r.endpoint()
	ep.RedirectURI = p.RedirectURI
	tok, err := b.connectCall(r, provider.GrantAuthorizationCode, func(ctx context.Context, c *provider.Client) (*provider.Token, error) {
		return c.ExchangeCode(ctx, ep, a.code, p.Verifier)
	})
	if err != nil {
		b.recordOutcome(name, "the code exchange failed: "+err.Error())
		return logical.CodedError(http.StatusBadGateway, fmt.Sprintf("the provider refused the code of %s (the chain is unchanged): %v", name, err))
	}
	var params map[string]string
	for _, k := range ep.RedirectParams() {
		if v := strings.TrimSpace(provider.CleanText(a.params[k])); v != "" {
			if params == nil {
				params = map[string]string{}
			}
			params[k] = v
		}
	}
	return b.completeConnection(ctx, s, r, p.selfConnection, obtained{tok, provider.GrantAuthorizationCode}, connection{By: p.RequestedBy, Params: params})
}

// connectCall makes one provider request that may start a chain, through the
// gateway, on the backend's context: a caller hanging up cannot cut it short.
func (b *backend) connectCall(r renewal, grant provider.Grant, call func(context.Context, *provider.Client) (*provider.Token, error)) (*provider.Token, error) {
	var tok *provider.Token
	err := b.send(b.ctx, r.request(grant, r.cfg.endpoint().EffectiveTokenURL()), func(ctx context.Context, c *provider.Client) (err error) {
		tok, err = call(ctx, c)
		return err
	})
	if err != nil {
		return nil, err
	}
	b.providerLog.Info("token obtained", "name", r.name, "grant", grant, "expires_in", tok.ExpiresIn)
	return tok, nil
}

// connect makes tok the start of r's chain, replacing whatever chain it
// had, and persists it; conn says who connected it and with what (its time
// is set here). Callers hold the name's lock.
func (b *backend) connect(ctx context.Context, r renewal, tok obtained, conn connection) error {
	name, now, by := r.name, b.now(), conn.By
	st := r.newState(tok, now)
	conn.At = now
	st.Connected = &conn
	// The event is stored with the chain, in one write (webhook.go).
	st = st.withEvent(b.connectEvent(r, r.snap.state, st, now))
	next := r.snap.with(func(n *snapshot) {
		n.state = st
		n.health = n.health.cleared().succeeded(tok.grant, now)
	})
	b.recordOutcome(name, "connected")
	b.refreshLog.Info("account connected; a new chain replaces the old one", "name", name, "grant", tok.grant, "by", by,
		"refresh_token", st.RefreshToken != "")
	if _, err := b.persist(ctx, name, next); err != nil {
		return fmt.Errorf("%s is connected, but: %w", name, err)
	}
	if old := r.snap.state; old != nil && old.RefreshToken != "" && old.RefreshToken != st.RefreshToken {
		// The replaced chain's grant is not left live at the provider, now
		// that the new chain is stored (identity.go).
		b.revokeQuietly(ctx, r, old.RefreshToken, provider.HintRefreshToken, "the replaced chain's refresh token")
	}
	return nil
}

// dropExpiredAuthorizations, run by the periodic pass, removes browser
// authorizations that expired unused.
func (b *backend) dropExpiredAuthorizations(ctx context.Context, s logical.Storage) {
	names, err := codeEntries.list(ctx, s)
	if err != nil {
		b.refreshLog.Warn("list pending authorizations", "error", err)
	}
	for _, name := range names {
		lock := b.lockFor(name)
		lock.Lock()
		var p pendingCode
		if found, err := codeEntries.loadInto(ctx, s, name, &p); err == nil && found && !b.now().Before(p.ExpiresAt) {
			_ = codeEntries.delete(ctx, s, name)
		}
		lock.Unlock()
	}
}
