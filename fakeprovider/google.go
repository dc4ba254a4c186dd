package fakeprovider

// A Google service account's token, as Google documents it
// (https://developers.google.com/identity/protocols/oauth2/service-account#httprest):
// POST the JWT-bearer grant (RFC 7523 §2.1) with an RS256 assertion whose kid
// is the key file's private_key_id, iss its client_email, aud the token URL,
// scope the scopes (space-delimited; required), sub only for domain-wide
// delegation, and exp at most an hour after iat. Errors are RFC 6749 §5.2:
// invalid_grant ("Invalid JWT Signature.", "Invalid JWT: …"), invalid_scope.
// Stricter than Google: a jti is required and never repeats.

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// PathGoogleToken is the fake's oauth2.googleapis.com/token.
const PathGoogleToken = "/google/token"

func (s *Server) handleGoogle(w http.ResponseWriter, x *exchange) {
	form, ok := jwtBearerForm(w, x)
	if !ok {
		return
	}
	c, err := s.verifyJWT(form.Get("assertion"), jwtRules{algs: []jose.SignatureAlgorithm{jose.RS256}, kid: true,
		audience: s.selfURL(x.r), lifetime: time.Hour, jti: true})
	switch {
	case errors.Is(err, errKey):
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Invalid JWT Signature.", false)
		return
	case err != nil:
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Invalid JWT: "+err.Error(), false)
		return
	case c.Scope == "":
		oauthError(w, http.StatusBadRequest, "invalid_scope", "Invalid OAuth scope or ID token audience provided.", false)
		return
	}
	who := c.Issuer
	if c.Subject != "" {
		who = c.Subject // domain-wide delegation: a token of the user
	}
	out := s.issue(GoogleServiceAccount, who, c.Scope, "jwt_bearer", false)
	writeJSON(w, http.StatusOK, contentTypeJSON, map[string]any{"access_token": out.access, "expires_in": out.expiresIn, "token_type": "Bearer"})
}

// jwtBearerForm reads an RFC 7523 §2.1 request: a form with the JWT-bearer
// grant_type and an assertion, and no client secret.
func jwtBearerForm(w http.ResponseWriter, x *exchange) (url.Values, bool) {
	form, ok := tokenForm(w, x)
	switch {
	case !ok:
	case form.Get("grant_type") != grantJWTBearer:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "Invalid grant_type: want "+grantJWTBearer, false)
	case form.Get("assertion") == "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "Missing required parameter: assertion", false)
	default:
		return form, true
	}
	return nil, false
}

// tokenForm reads a token request's form body; false when it has answered.
func tokenForm(w http.ResponseWriter, x *exchange) (url.Values, bool) {
	form, err := url.ParseQuery(string(x.body))
	switch {
	case mediaType(x.r) != contentTypeForm:
		oauthError(w, http.StatusBadRequest, "invalid_request", "Content-Type must be application/x-www-form-urlencoded", false)
	case err != nil:
		oauthError(w, http.StatusBadRequest, "invalid_request", "malformed form body", false)
	case form.Has("client_secret") && form.Has("client_assertion"):
		oauthError(w, http.StatusBadRequest, "invalid_request", "more than one client authentication method", false)
	default:
		return form, true
	}
	return nil, false
}
