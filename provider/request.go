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
	g, target := e.row().mint, e.TokenURL
	switch {
	case name == GrantRefreshToken:
		if refreshToken == "" {
			return nil, fmt.Errorf("refresh grant without a refresh token")
		}
		g, target = e.row().refresh, e.EffectiveRefreshURL()
	case name != g.name:
		return nil, fmt.Errorf("provider %s does not support grant %s", e.Dialect, name)
	}
	params := g.params(e, refreshToken)
	header := http.Header{}
	if g.oauth {
		params = append(params, e.extraParams()...)
		params = e.authFor(g)(e, params, header)
	}
	req, err := e.encode(ctx, target, params)
	if err != nil {
		return nil, err
	}
	maps.Copy(req.Header, header)
	return req, nil
}
