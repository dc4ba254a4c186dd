package fakeprovider

import (
	"net/http"
	"net/url"
)

// handleEcho360 serves POST /oauth2/access_token as seed 000 documents it:
//
//   - client_credentials with client_id and client_secret returns an access
//     token (1 h) and a refresh token;
//   - refresh_token with client_id and refresh_token (no secret) returns a new
//     access token and a new refresh token; refresh tokens never expire but
//     are single-use, and belong to the client they were issued to.
//
// Parameters may come in a form body or in the URL query string, since
// Echo360's Swagger page sends them as query parameters.
func (s *Server) handleEcho360(w http.ResponseWriter, x *exchange) {
	r := x.r
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "the token endpoint accepts POST only", false)
		return
	}
	body := url.Values{}
	if len(x.body) > 0 {
		if mt := mediaType(r); mt != contentTypeForm && mt != "" {
			oauthError(w, http.StatusBadRequest, "invalid_request", "parameters must be a form body (application/x-www-form-urlencoded) or query parameters", false)
			return
		}
		var err error
		if body, err = url.ParseQuery(string(x.body)); err != nil {
			oauthError(w, http.StatusBadRequest, "invalid_request", "malformed form body", false)
			return
		}
	}
	query := r.URL.Query()
	param := func(k string) (string, bool) {
		if body.Has(k) {
			return body.Get(k), true
		}
		return query.Get(k), query.Has(k)
	}

	grant, _ := param("grant_type")
	clientID, _ := param("client_id")
	secret, secretSent := param("client_secret")
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
			oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed", false)
			return
		}
		out := s.issue(Echo360, clientID, "", grantClientCredentials, true)
		writeOAuth2Token(w, out, "bearer")
		return
	}

	// Refresh: the secret is not needed, but one sent along must be right.
	if secretSent && !s.clientOK(clientID, secret) {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed", false)
		return
	}
	rt, _ := param("refresh_token")
	if rt == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "refresh_token is required", false)
		return
	}
	out, err := s.redeem(Echo360, rt, clientID, true, "")
	if err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "the refresh token is invalid, already used, or was issued to another client", false)
		return
	}
	writeOAuth2Token(w, out, "bearer")
}
