package tokenbroker

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// RFC 8693 token exchange at the provider: a role with an exchange
// (path_role.go) presents the chain's current access token as the subject
// token, with the config's client authentication, and gets another token
// for it (an audience, resources, fewer scopes). The result is a variant of
// the name, cached per role's request like any token (variants.go).

// exchangeSubjectTTL is the least a subject token must have left when it is
// presented: one about to expire could be refused in transit.
const exchangeSubjectTTL = 30 // seconds, as min_ttl

// roleExchange is a role's token exchange: what it presents and asks for
// besides the role's narrowing (scope, audience, resource).
type roleExchange struct {
	// SubjectTokenType is what the chain presents as the subject token:
	// "access_token", its access token, or "id_token", the ID token its
	// provider issued with its tokens (RFC 8693 §3's token types).
	SubjectTokenType string `json:"subject_token_type"`
	// RequestedTokenType ("" leaves it to the provider) is a token type URI,
	// or access_token, id_token, jwt, refresh_token for theirs (RFC 8693 §3).
	RequestedTokenType string `json:"requested_token_type,omitempty"`
}

// tokenTypes are the short names a role may give token types by.
var tokenTypes = map[string]string{
	"access_token": provider.TokenTypeAccessToken, "id_token": provider.TokenTypeIDToken,
	"jwt": provider.TokenTypeJWT, "refresh_token": provider.TokenTypeRefreshToken,
}

// key is x's part of a variant's cache key.
func (x *roleExchange) key() string { return x.SubjectTokenType + "|" + x.requested() }

// requested is the requested_token_type URI ("": none).
func (x *roleExchange) requested() string {
	if uri, short := tokenTypes[x.RequestedTokenType]; short {
		return uri
	}
	return x.RequestedTokenType
}

// exchangeVariant exchanges subject's access token (or ID token) for vr's
// token at r's provider (RFC 8693 §2.1). Errors are classified as every
// answer is (§2.2.2: invalid_target is a refused narrowing, a 400 for the
// read).
func (b *backend) exchangeVariant(ctx context.Context, r renewal, vr *variantRequest, subject *snapshot) (*tokenState, error) {
	ep := r.endpoint()
	if !ep.CanExchange() {
		return nil, logical.CodedError(http.StatusBadRequest, fmt.Sprintf("config %q: provider %s does not offer token exchange (RFC 8693)", r.name, r.cfg.Provider))
	}
	if subject == nil || subject.state == nil || subject.state.AccessToken == "" {
		return nil, fmt.Errorf("config %q: no access token to exchange", r.name)
	}
	token, tokenType := subject.state.AccessToken, provider.TokenTypeAccessToken
	if vr.exchange.SubjectTokenType == "id_token" {
		var err error
		if token, err = b.exchangeableIDToken(r.name, subject.state); err != nil {
			return nil, err
		}
		tokenType = provider.TokenTypeIDToken
	}
	n := vr.narrowing
	r.narrowing = &n
	tok, err := b.sendToken(ctx, r, ep, provider.TokenRequest{Grant: provider.GrantTokenExchange, Narrowing: &n,
		Exchange: &provider.TokenExchange{SubjectToken: token, SubjectTokenType: tokenType,
			RequestedTokenType: vr.exchange.requested()}})
	if err != nil {
		return nil, err
	}
	return r.newState(obtained{tok, provider.GrantTokenExchange}, b.now()).accessOnly(), nil
}

// exchangeableIDToken is st's ID token, if it has one with at least
// exchangeSubjectTTL left by its (unverified) exp: the provider verifies
// it, and would refuse one that is missing or expired.
func (b *backend) exchangeableIDToken(name string, st *tokenState) (string, error) {
	if st.IDToken == "" {
		return "", logical.CodedError(http.StatusBadRequest, fmt.Sprintf(
			"config %q holds no ID token to exchange: its provider issued none with the chain's tokens (an OpenID provider issues one to a user's authorization with the openid scope)", name))
	}
	if exp, ok := provider.IDTokenExpiry(st.IDToken); ok && exp.Sub(b.now()) < exchangeSubjectTTL*time.Second {
		return "", logical.CodedError(http.StatusBadGateway, fmt.Sprintf(
			"config %q: its ID token expired at %s; the provider issued no newer one (one comes, if at all, with the chain's next refresh, or when the account is connected again)", name, exp.UTC().Format(time.RFC3339)))
	}
	return st.IDToken, nil
}
