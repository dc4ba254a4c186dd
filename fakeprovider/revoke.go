package fakeprovider

// Token revocation (RFC 7009, https://datatracker.ietf.org/doc/html/rfc7009)
// for the oauth2 dialect, whose users authorize clients: POST /oauth2/revoke.
//
// Strict where the RFC is: POST only (405 otherwise), a form body only,
// parameters at most once, the client authenticated as at the token
// endpoint (HTTP Basic, client_id and client_secret, or a client assertion
// whose aud is the token endpoint; refused in SetClientAuthFailure's
// shape), token required (400 invalid_request), token_type_hint optional
// but access_token or refresh_token when sent (400 unsupported_token_type,
// the fake's reading of §2.2.1). An unknown, expired, already revoked or
// rotated token is answered 200 (§2.2), and so is a known one once revoked.
//
// A token issued to another client is refused (§2.1: the server "verifies
// whether the token was issued to the client making the revocation
// request"; the RFC names no error): 400 unauthorized_client, as
// ory/fosite's revocation handler answers.
//
// Revoking a refresh token makes the refresh grant refuse it (in the
// dialect's refusal shape; not counted as a reuse) and, unless
// SetRevocationKeepsAccessTokens, revokes the access tokens of its grant
// (§2.1: the server SHOULD, where it supports it). Revoking an access token
// revokes it alone.

import (
	"errors"
	"net/http"
	"net/url"
)

// PathRevoke is the oauth2 dialect's revocation endpoint.
const PathRevoke = "/oauth2/revoke"

// The token_type_hint values of RFC 7009 §2.1.
const (
	hintAccessToken  = "access_token"
	hintRefreshToken = "refresh_token"
)

var errRevokeClient = errors.New("the token was issued to another client")

// SetRevocationKeepsAccessTokens makes revoking a refresh token leave the
// access tokens of its grant valid until they expire (false, the default:
// they are revoked with it).
func (s *Server) SetRevocationKeepsAccessTokens(keep bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revocationKeepsAccess = keep
}

// Revocations counts the tokens revoked at PathRevoke since the last Reset:
// each refresh or access token a request revoked, not the access tokens
// revoked with a refresh token (RevokedTokens counts those), nor requests
// answered 200 for a token already invalid.
func (s *Server) Revocations() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.revocations
}

// RefreshTokenRevoked reports whether refresh token rt was revoked at PathRevoke.
func (s *Server) RefreshTokenRevoked(rt string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.refresh[rt]
	return ok && rec.state == refreshRevoked
}

// handleRevoke serves POST /oauth2/revoke.
func (s *Server) handleRevoke(w http.ResponseWriter, x *exchange) {
	if x.r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "the revocation endpoint accepts POST only", false)
		return
	}
	form, err := url.ParseQuery(string(x.body))
	if mediaType(x.r) != contentTypeForm || err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "POST an application/x-www-form-urlencoded body", false)
		return
	}
	for k, v := range form {
		if len(v) > 1 {
			oauthError(w, http.StatusBadRequest, "invalid_request", "parameter "+k+" is repeated", false)
			return
		}
	}
	if q := x.r.URL.Query(); q.Has("token") || q.Has("client_secret") {
		oauthError(w, http.StatusBadRequest, "invalid_request", "credentials must be sent in the body, not in the URL", false)
		return
	}
	clientID, basic, ok := s.authenticateOAuth2Client(w, x, form)
	if !ok {
		return
	}
	token, hint := form.Get("token"), form.Get("token_type_hint")
	switch {
	case token == "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "token is required", basic)
		return
	case hint != "" && hint != hintAccessToken && hint != hintRefreshToken:
		oauthError(w, http.StatusBadRequest, "unsupported_token_type", "token_type_hint must be access_token or refresh_token", basic)
		return
	}
	if err := s.revokeToken(clientID, token); err != nil {
		oauthError(w, http.StatusBadRequest, "unauthorized_client", err.Error(), basic)
		return
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

// revokeToken revokes token for client, whatever the hint said (RFC 7009
// §2.1: the server extends its search when the hint is wrong). A token this
// server does not know for oauth2, or that is no longer valid, is left as
// it is.
func (s *Server) revokeToken(client, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if rec, ok := s.refresh[token]; ok && rec.dialect == OAuth2 {
		if rec.client != client {
			return errRevokeClient
		}
		live := rec.state == refreshLive || rec.state == refreshRefused
		if live && (rec.expires.IsZero() || now.Before(rec.expires)) {
			rec.state = refreshRevoked
			s.revocations++
			if !s.revocationKeepsAccess {
				s.revokeFamilyLocked(now, rec.family)
			}
		}
		return nil
	}
	if rec, ok := s.access[token]; ok && rec.dialect == OAuth2 {
		if rec.client != client {
			return errRevokeClient
		}
		if rec.revoked.IsZero() && now.Before(rec.expires) {
			rec.revoked = now
			s.access[token] = rec
			s.revocations++
		}
	}
	return nil
}
