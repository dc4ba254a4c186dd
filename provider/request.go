package provider

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
)

// TokenRequest is what one token request asks for besides what its endpoint
// configures.
type TokenRequest struct {
	Grant Grant
	// RefreshToken is the refresh grant's.
	RefreshToken string
	// Narrowing, when set, asks for less than the endpoint's configured
	// token (narrowing.go): its scopes and audience replace the configured
	// ones, its resources are sent (RFC 8707), its repositories and
	// permissions replace the installation's.
	Narrowing *Narrowing
	// Exchange is the token exchange grant's subject and actor (RFC 8693).
	Exchange *TokenExchange
}

// secrets are the credentials in carries, for its Redactor.
func (in *TokenRequest) secrets() []string {
	out := []string{in.RefreshToken}
	if x := in.Exchange; x != nil {
		out = append(out, x.SubjectToken, x.ActorToken)
	}
	return out
}

// NewRequest builds the HTTP request for grant without narrowing;
// refreshToken is used only by GrantRefreshToken.
func (e *Endpoint) NewRequest(ctx context.Context, name Grant, refreshToken string) (*http.Request, error) {
	return e.NewTokenRequest(ctx, TokenRequest{Grant: name, RefreshToken: refreshToken})
}

// NewTokenRequest builds the HTTP request for in: the dialect's grant (its
// parameters, of the endpoint as in's narrowing narrows it), the endpoint's
// extra parameters and client authentication for an RFC 6749 grant, then
// the encoding.
func (e *Endpoint) NewTokenRequest(ctx context.Context, in TokenRequest) (*http.Request, error) {
	g, target, err := e.grantOf(in)
	if err != nil {
		return nil, err
	}
	if g.params == nil {
		return nil, fmt.Errorf("the %s grant of provider %s starts only from a user's authorization", in.Grant, e.Dialect)
	}
	n, err := e.narrowing(g, &in)
	if err != nil {
		return nil, err
	}
	return n.assemble(ctx, g, target, g.params(n, &in))
}

// grantOf is the dialect's grant for in and where it goes.
func (e *Endpoint) grantOf(in TokenRequest) (grant, string, error) {
	g, target := e.mint(), e.EffectiveTokenURL()
	switch {
	case in.Grant == GrantRefreshToken:
		if in.RefreshToken == "" {
			return grant{}, "", fmt.Errorf("refresh grant without a refresh token")
		}
		g, target = e.row().refresh, e.EffectiveRefreshURL()
	case in.Grant == GrantTokenExchange:
		if e.row().exchange.name == "" {
			return grant{}, "", fmt.Errorf("provider %s does not support grant %s", e.Dialect, in.Grant)
		}
		if err := in.Exchange.check(); err != nil {
			return grant{}, "", err
		}
		g = e.row().exchange
	case in.Grant != g.name:
		return grant{}, "", fmt.Errorf("provider %s does not support grant %s", e.Dialect, in.Grant)
	}
	return g, target, nil
}

// narrowing puts in's narrowing in its canonical form and returns e as it
// narrows it for grant g: its scopes and audience in place of e's, its
// repositories and permissions in place of the installation's. A narrowing
// that is not usable, or that asks what g cannot carry, is refused.
func (e *Endpoint) narrowing(g grant, in *TokenRequest) (*Endpoint, error) {
	if in.Narrowing == nil || in.Narrowing.IsZero() {
		in.Narrowing = nil
		return e, nil
	}
	c, err := in.Narrowing.Canonical()
	if err != nil {
		return nil, fmt.Errorf("narrowing: %w", err)
	}
	if what := g.narrows.refusal(&c); what != "" {
		return nil, fmt.Errorf("the %s grant of provider %s cannot narrow %s", in.Grant, e.Dialect, what)
	}
	in.Narrowing = &c
	n := *e
	if len(c.Scopes) > 0 {
		n.Scopes = c.Scopes
	}
	if len(c.Audiences) == 1 {
		n.Audience = c.Audiences[0]
	}
	if len(c.Repositories)+len(c.RepositoryIDs) > 0 || len(c.Permissions) > 0 {
		app := Installation{}
		if e.Installation != nil {
			app = *e.Installation
		}
		if len(c.Repositories)+len(c.RepositoryIDs) > 0 {
			// Both kinds at once: configured ids beside narrowed names would widen.
			app.Repositories, app.RepositoryIDs = c.Repositories, c.RepositoryIDs
		}
		if len(c.Permissions) > 0 {
			app.Permissions = c.Permissions
		}
		n.Installation = &app
	}
	return &n, nil
}

// assemble adds to params, for an RFC 6749 grant, the endpoint's extra
// parameters and client authentication, signs the assertions among them,
// then encodes them as a POST to target.
func (e *Endpoint) assemble(ctx context.Context, g grant, target string, params []param) (*http.Request, error) {
	auth := authOmitted
	if g.oauth {
		params = append(params, e.extraParams(params)...)
		auth = e.authFor(g)
	}
	return e.authenticated(ctx, e.EffectiveEncoding(), target, params, auth)
}

// authenticated adds auth's client authentication to params, signs the
// assertions among them, then encodes them in enc as a POST to target.
func (e *Endpoint) authenticated(ctx context.Context, enc Encoding, target string, params []param, auth clientAuth) (*http.Request, error) {
	header := http.Header{}
	params = auth(e, params, header)
	params, err := e.signAssertions(params)
	if err != nil {
		return nil, err
	}
	req, err := e.encode(ctx, enc, target, params)
	if err != nil {
		return nil, err
	}
	maps.Copy(req.Header, header)
	return req, nil
}

// withAuthScopes is scopes and then those of the dialect's authorization
// scopes (offline_access) it lacks: a refresh that narrows its scope keeps
// asking for what buys the refresh token (Microsoft: "scope ...
// offline_access", https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow#refresh-the-access-token).
// They were granted with the chain, so the request stays within it.
func (e *Endpoint) withAuthScopes(scopes []string) []string {
	out := slices.Clone(scopes)
	for _, s := range e.row().authScopes {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
