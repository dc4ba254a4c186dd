package provider

import (
	"context"
	"fmt"
	"maps"
	"net/http"
)

// NewRequest builds the HTTP request for grant: the dialect's grant (its
// parameters), the endpoint's extra parameters and client authentication for
// an RFC 6749 grant, then the encoding. refreshToken is used only by
// GrantRefreshToken.
func (e *Endpoint) NewRequest(ctx context.Context, name Grant, refreshToken string) (*http.Request, error) {
	g, target := e.mint(), e.EffectiveTokenURL()
	switch {
	case name == GrantRefreshToken:
		if refreshToken == "" {
			return nil, fmt.Errorf("refresh grant without a refresh token")
		}
		g, target = e.row().refresh, e.EffectiveRefreshURL()
	case name != g.name:
		return nil, fmt.Errorf("provider %s does not support grant %s", e.Dialect, name)
	}
	if g.params == nil {
		return nil, fmt.Errorf("the %s grant of provider %s starts only from a user's authorization", name, e.Dialect)
	}
	return e.assemble(ctx, g, target, g.params(e, refreshToken))
}

// assemble adds to params, for an RFC 6749 grant, the endpoint's extra
// parameters and client authentication, signs the assertions among them,
// then encodes them as a POST to target.
func (e *Endpoint) assemble(ctx context.Context, g grant, target string, params []param) (*http.Request, error) {
	auth := authOmitted
	if g.oauth {
		params = append(params, e.extraParams()...)
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
