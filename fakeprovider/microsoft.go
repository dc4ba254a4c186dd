package fakeprovider

// Microsoft Entra ID's client credentials with a certificate credential, as
// Microsoft documents them
// (https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow,
// .../certificate-credentials): POST /{tenant}/oauth2/v2.0/token with
// client_id, scope (one resource's /.default), grant_type=client_credentials
// and a client assertion signed PS256 or RS256 whose x5t#S256 header names
// a registered certificate (AddAssertionCertificate), iss and sub the client
// id, aud this token URL, a jti never seen before. Errors carry AADSTS codes.

import (
	"net/http"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// PathMicrosoftToken is the fake's login.microsoftonline.com token endpoint
// pattern; MicrosoftTokenPath fills in a tenant.
const PathMicrosoftToken = "/microsoft/{tenant}/oauth2/v2.0/token"

// MicrosoftTokenPath is the token path of tenant.
func MicrosoftTokenPath(tenant string) string {
	return strings.Replace(PathMicrosoftToken, "{tenant}", tenant, 1)
}

func (s *Server) handleMicrosoft(w http.ResponseWriter, x *exchange) {
	form, ok := tokenForm(w, x)
	if !ok {
		return
	}
	scopes := scopeList(form.Get("scope"))
	switch {
	case form.Get("grant_type") != grantClientCredentials:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type.", false)
		return
	case len(scopes) == 0:
		oauthError(w, http.StatusBadRequest, "invalid_request", "AADSTS90014: The required field 'scope' is missing from the credential.", false)
		return
	case len(scopes) != 1 || !strings.HasSuffix(scopes[0], "/.default"):
		oauthError(w, http.StatusBadRequest, "invalid_scope", "AADSTS1002012: Client credential flows must have a scope value with /.default suffixed to the resource identifier.", false)
		return
	}
	client, ok := s.clientAssertion(w, x, form, jwtRules{algs: []jose.SignatureAlgorithm{jose.PS256, jose.RS256}, x5tS256: true},
		"AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application.")
	if !ok {
		return
	}
	out := s.issue(MicrosoftCertificate, client, scopes[0], grantClientCredentials, false)
	writeJSON(w, http.StatusOK, contentTypeJSON, map[string]any{"token_type": "Bearer", "expires_in": out.expiresIn,
		"ext_expires_in": out.expiresIn, "access_token": out.access})
}

// clientAssertion authenticates a private_key_jwt client (RFC 7523 §2.2):
// the assertion type, then the assertion under r, with iss and sub the
// client id (and client_id, when sent, the same) and aud r's audience, by
// default this token URL.
// unknownKey is the provider's words for a key it does not know. false when
// it has answered.
func (s *Server) clientAssertion(w http.ResponseWriter, x *exchange, form map[string][]string, r jwtRules, unknownKey string) (string, bool) {
	get := func(k string) string {
		if v := form[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	if get("client_assertion_type") != clientAssertionType || get("client_assertion") == "" {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client_assertion_type must be "+clientAssertionType+", with a client_assertion", false)
		return "", false
	}
	if r.audience == "" {
		r.audience = s.selfURL(x.r)
	}
	r.jti, r.subject = true, true
	c, err := s.verifyJWT(get("client_assertion"), r)
	switch {
	case err == errKey:
		oauthError(w, http.StatusUnauthorized, "invalid_client", unknownKey, false)
	case err != nil:
		oauthError(w, http.StatusUnauthorized, "invalid_client", "the client assertion is invalid: "+err.Error(), false)
	case c.Issuer != c.Subject || (get("client_id") != "" && get("client_id") != c.Issuer):
		oauthError(w, http.StatusUnauthorized, "invalid_client", "iss, sub and client_id must name the same client", false)
	default:
		return c.Issuer, true
	}
	return "", false
}
