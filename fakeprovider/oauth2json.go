package fakeprovider

import (
	"net/http"
)

// handleOAuth2JSON serves /oauth/token for an API that documents OAuth 2.0
// client credentials with a JSON body {client_id, client_secret, grant_type}
// instead of RFC 6749's form encoding. Its text says GET and its examples
// POST, so both are accepted; the body must be JSON either way. There is no
// refresh grant: its documentation says that when the token expires, the client
// simply calls the token endpoint again. With SetOAuth2JSONRefreshTokens the
// answer carries a refresh_token all the same, which cannot be redeemed.
func (s *Server) handleOAuth2JSON(w http.ResponseWriter, x *exchange) {
	r := x.r
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "the token endpoint accepts GET or POST", false)
		return
	}
	if mediaType(r) != contentTypeJSON {
		oauthError(w, http.StatusBadRequest, "invalid_request", "Content-Type must be application/json", false)
		return
	}
	m, err := decodeJSONObject(x.body)
	if err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the body must be a JSON object", false)
		return
	}
	names := []string{"client_id", "client_secret", "grant_type"}
	var fields [3]string
	for i, k := range names {
		if fields[i], _, err = jsonString(m, k); err != nil {
			oauthError(w, http.StatusBadRequest, "invalid_request", err.Error(), false)
			return
		}
	}
	id, secret, grant := fields[0], fields[1], fields[2]
	switch {
	case grant == "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "grant_type is required", false)
		return
	case grant != grantClientCredentials:
		if rt, _, _ := jsonString(m, "refresh_token"); grant == grantRefreshToken && rt != "" {
			s.noteRefusedRefresh(OAuth2JSON, rt)
		}
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "only client_credentials is supported", false)
		return
	case id == "" || secret == "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "client_id and client_secret are required", false)
		return
	case !s.clientOK(id, secret):
		s.refuseClient(w, OAuth2JSON, "client authentication failed", false)
		return
	}
	s.mu.Lock()
	withRefresh := s.oauth2JSONRefresh
	s.mu.Unlock()
	out := s.issue(OAuth2JSON, id, "", grantClientCredentials, withRefresh)
	writeOAuth2Token(w, out, "Bearer")
}

// SetOAuth2JSONRefreshTokens makes the oauth2_json endpoint return a
// refresh_token with each client-credentials token (on), as some such APIs
// do although they document no refresh grant, or return none (off, the
// default). Either way grant_type=refresh_token is refused with 400
// unsupported_grant_type, so a client that trusts the refresh token it was
// given must fall back to client credentials.
func (s *Server) SetOAuth2JSONRefreshTokens(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.oauth2JSONRefresh = on
}
