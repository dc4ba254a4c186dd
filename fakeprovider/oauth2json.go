package fakeprovider

import (
	"net/http"
)

// handleOAuth2JSON serves /oauth/token as seed 003 documents it: client
// credentials in a JSON body {client_id, client_secret, grant_type}. The text
// says GET and the examples POST, so both are accepted; the body must be JSON
// either way. There is no refresh grant: a client calls again.
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
	var fields [3]string
	for i, k := range []string{"client_id", "client_secret", "grant_type"} {
		v, present, err := jsonString(m, k)
		if err != nil {
			oauthError(w, http.StatusBadRequest, "invalid_request", err.Error(), false)
			return
		}
		if !present || v == "" {
			oauthError(w, http.StatusBadRequest, "invalid_request", k+" is required", false)
			return
		}
		fields[i] = v
	}
	id, secret, grant := fields[0], fields[1], fields[2]
	if grant != grantClientCredentials {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "only client_credentials is supported", false)
		return
	}
	if !s.clientOK(id, secret) {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed", false)
		return
	}
	out := s.issue(OAuth2JSON, id, "", grantClientCredentials, false)
	writeOAuth2Token(w, out, "Bearer")
}
