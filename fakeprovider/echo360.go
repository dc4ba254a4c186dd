package fakeprovider

import (
	"net/http"
)

// handleEcho360 serves POST /oauth2/access_token as Echo360 documents it in
// "EchoVideo: Generating Client Credentials to Obtain Access Token"
// (https://support.echo360.com/hc/en-us/articles/360035034252):
//
//   - client_credentials with client_id and client_secret returns an access
//     token (1 h) and a refresh token;
//   - refresh_token with client_id and refresh_token (no secret) returns a new
//     access token and a new refresh token; refresh tokens never expire but
//     are single-use, and belong to the client they were issued to.
//
// Where the parameters go is set by SetEcho360Encoding: a form body by
// default; the URL query, as Echo360's Swagger page sends them; or either.
func (s *Server) handleEcho360(w http.ResponseWriter, x *exchange) {
	if x.r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "the token endpoint accepts POST only", false)
		return
	}
	params, ok := s.echo360Params(w, x)
	if !ok {
		return
	}
	grant, clientID := params.Get("grant_type"), params.Get("client_id")
	secret, secretSent := params.Get("client_secret"), params.Has("client_secret")
	switch {
	case grant == "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "grant_type is required", false)
		return
	case grant != grantClientCredentials && grant != grantRefreshToken:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "supported grant types: client_credentials, refresh_token", false)
		return
	case clientID == "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "client_id is required", false)
		return
	}

	if grant == grantClientCredentials {
		if !secretSent || !s.clientOK(clientID, secret) {
			s.refuseClient(w, Echo360, "client authentication failed", false)
			return
		}
		out := s.issue(Echo360, clientID, "", grantClientCredentials, true)
		writeOAuth2Token(w, out, "bearer")
		return
	}

	// Refresh: the secret is not needed, but one sent along must be right.
	if secretSent && !s.clientOK(clientID, secret) {
		s.refuseClient(w, Echo360, "client authentication failed", false)
		return
	}
	rt := params.Get("refresh_token")
	if rt == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "refresh_token is required", false)
		return
	}
	out, err := s.redeem(Echo360, rt, clientID, true, ask{})
	if err != nil {
		writeRefusal(w, err)
		return
	}
	writeOAuth2Token(w, out, "bearer")
}
