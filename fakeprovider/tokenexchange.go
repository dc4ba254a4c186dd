package fakeprovider

// OAuth 2.0 Token Exchange (RFC 8693) at the oauth2 token endpoint, off
// unless SetTokenExchange turns it on: grant_type
// urn:ietf:params:oauth:grant-type:token-exchange, the token endpoint's
// client authentication, a subject_token that is an access token this
// server issued at PathOAuth2Token and is still valid, audience and resource
// (both repeatable) within the client's policy, scope within the subject
// token's. Answers per §2.2.1 (issued_token_type, no refresh token), errors
// per §2.2.2: invalid_request for a missing, unsupported or invalid token or
// type, invalid_target for an audience or resource outside the policy,
// invalid_scope for a wider scope.

import (
	"net/http"
	"net/url"
	"strings"
)

const (
	grantTokenExchange      = "urn:ietf:params:oauth:grant-type:token-exchange"
	grantTokenExchangeCount = "token_exchange" // its name in Grants
	tokenTypeAccessToken    = "urn:ietf:params:oauth:token-type:access_token"
)

// TokenExchangeMode is whether, and for whom, the oauth2 endpoint exchanges
// tokens. RFC 8693 leaves to the server which clients may exchange which
// subject tokens (§2.1: "the authorization server ... determines whether
// the client is authorized"); the modes are the two readings.
type TokenExchangeMode int

const (
	// TokenExchangeOff (the default) answers the grant with
	// unsupported_grant_type, as a server without RFC 8693 does.
	TokenExchangeOff TokenExchangeMode = iota
	// TokenExchangeAnyClient exchanges a subject token for any client
	// that authenticates.
	TokenExchangeAnyClient
	// TokenExchangeSameClient exchanges only a subject token issued to the
	// client that presents it.
	TokenExchangeSameClient
)

var tokenExchangeModeNames = []string{"TokenExchangeOff", "TokenExchangeAnyClient", "TokenExchangeSameClient"}

// String names the mode as its constant does.
func (m TokenExchangeMode) String() string {
	return enumName(tokenExchangeModeNames, int(m), "TokenExchangeMode")
}

// SetTokenExchange sets whether, and for whom, the oauth2 endpoint
// exchanges tokens.
func (s *Server) SetTokenExchange(m TokenExchangeMode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenExchange = m
}

// tokenExchangeAnswer is RFC 8693 §2.2.1's answer.
type tokenExchangeAnswer struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int    `json:"expires_in"`
	Scope           string `json:"scope,omitempty"`
}

// handleTokenExchange answers a token exchange from the authenticated clientID.
func (s *Server) handleTokenExchange(w http.ResponseWriter, clientID string, basic bool, form url.Values) {
	refuse := func(code, description string) { oauthError(w, http.StatusBadRequest, code, description, basic) }
	s.mu.Lock()
	mode, p := s.tokenExchange, s.policyLocked(clientID)
	s.mu.Unlock()
	if mode == TokenExchangeOff {
		refuse("unsupported_grant_type", "supported grant types: client_credentials, refresh_token, authorization_code, device_code")
		return
	}
	subject, subjectType := form.Get("subject_token"), form.Get("subject_token_type")
	actor, actorType := form.Get("actor_token"), form.Get("actor_token_type")
	switch {
	case subject == "" || subjectType == "":
		refuse("invalid_request", "subject_token and subject_token_type are required")
		return
	case subjectType != tokenTypeAccessToken:
		refuse("invalid_request", "subject_token_type "+subjectType+" is not supported: this server exchanges access tokens")
		return
	case (actor == "") != (actorType == ""):
		refuse("invalid_request", "actor_token_type is required with an actor_token, and only with one")
		return
	case actor != "" && actorType != tokenTypeAccessToken:
		refuse("invalid_request", "actor_token_type "+actorType+" is not supported")
		return
	case form.Has("requested_token_type") && form.Get("requested_token_type") != tokenTypeAccessToken:
		refuse("invalid_request", "requested_token_type "+form.Get("requested_token_type")+" is not supported: this server issues access tokens")
		return
	}
	rec, ok := s.lookupAccess(subject)
	switch {
	case !ok || rec.dialect != OAuth2:
		refuse("invalid_request", "subject_token is invalid, expired or revoked")
		return
	case mode == TokenExchangeSameClient && rec.client != clientID:
		refuse("invalid_request", "subject_token was issued to another client")
		return
	}
	if actor != "" {
		if a, ok := s.lookupAccess(actor); !ok || a.dialect != OAuth2 {
			refuse("invalid_request", "actor_token is invalid, expired or revoked")
			return
		}
	}
	scope := strings.Join(strings.Fields(form.Get("scope")), " ")
	if scope == "" {
		scope = rec.scope
	}
	if rec.scope != "" && !scopeSubset(scope, rec.scope) {
		refuse("invalid_scope", "the requested scope exceeds the subject token's")
		return
	}
	if err := p.scopeAllowed(scope); err != nil {
		refuse("invalid_scope", err.Error())
		return
	}
	aud, err := p.targetsAllowed(form["resource"], form["audience"])
	if err != nil {
		refuse("invalid_target", err.Error())
		return
	}
	s.mu.Lock()
	out := s.issueForLocked(OAuth2, clientID, target{scope: scope, aud: aud}, grantTokenExchangeCount, false, s.newFamilyLocked())
	s.mu.Unlock()
	answer := tokenExchangeAnswer{AccessToken: out.access, IssuedTokenType: tokenTypeAccessToken, TokenType: "Bearer", ExpiresIn: out.expiresIn}
	if form.Has("scope") || scope != rec.scope { // §2.2.1: OPTIONAL when identical to the requested scope
		answer.Scope = scope
	}
	writeJSON(w, http.StatusOK, contentTypeJSON, answer)
}
