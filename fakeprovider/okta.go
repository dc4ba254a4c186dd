package fakeprovider

// An Okta service app's client credentials, as Okta documents them
// (https://developer.okta.com/docs/guides/implement-oauth-for-okta-serviceapp/main/,
// https://developer.okta.com/docs/api/openapi/okta-oauth/guides/client-auth/):
// private_key_jwt only, signed RS256 or ES256, iss and sub the client id,
// aud the token URL, exp at most an hour ahead, a jti never used before;
// scope is required.

import (
	"net/http"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// PathOktaToken is the fake's org authorization server token endpoint.
const PathOktaToken = "/okta/oauth2/v1/token"

func (s *Server) handleOkta(w http.ResponseWriter, x *exchange) {
	form, ok := tokenForm(w, x)
	if !ok {
		return
	}
	switch {
	case form.Get("grant_type") != grantClientCredentials:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "The authorization grant type is not supported by the authorization server.", false)
		return
	case form.Get("scope") == "":
		oauthError(w, http.StatusBadRequest, "invalid_scope", "The authorization server resource does not have any configured default scopes, 'scope' must be provided.", false)
		return
	}
	client, ok := s.clientAssertion(w, x, form, jwtRules{algs: []jose.SignatureAlgorithm{jose.RS256, jose.ES256}, ahead: time.Hour},
		"The client_assertion signature is invalid.")
	if !ok {
		return
	}
	scope := strings.Join(scopeList(form.Get("scope")), " ")
	out := s.issue(OktaServiceApp, client, scope, grantClientCredentials, false)
	writeJSON(w, http.StatusOK, contentTypeJSON, map[string]any{"token_type": "Bearer", "expires_in": out.expiresIn,
		"access_token": out.access, "scope": scope})
}
