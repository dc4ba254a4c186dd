package fakeprovider

import (
	"net/http"
)

// ClientAuthFailure is how a dialect refuses a client it cannot authenticate
// (unknown client, wrong or missing secret, malformed Authorization header).
// It applies to oauth2, oauth2_json, echo360 and endorsed; api.video answers
// an unknown API key in its own problem shape whatever is set.
type ClientAuthFailure int

const (
	// ClientAuth401InvalidClient (the default) answers 401 with
	// {"error":"invalid_client"}, as RFC 6749 §5.2 prescribes, and
	// WWW-Authenticate when the client used HTTP Basic. Endorsed's body also
	// carries is_error and message.
	ClientAuth401InvalidClient ClientAuthFailure = iota
	// ClientAuth400InvalidClient answers 400 {"error":"invalid_client"}:
	// §5.2 allows 400 only when the client did not use the Authorization
	// header, but servers send it either way.
	ClientAuth400InvalidClient
	// ClientAuthBare400 answers 400 with no OAuth error code: a body
	// {"message": …} for the OAuth dialects, and for endorsed
	// {"is_error": true, "message": …}, the error counterpart of the
	// {"is_error": false, …} success that Endorsed documents.
	ClientAuthBare400
)

var clientAuthFailureNames = []string{
	"ClientAuth401InvalidClient",
	"ClientAuth400InvalidClient",
	"ClientAuthBare400",
}

// String names the answer as its constant does.
func (f ClientAuthFailure) String() string {
	return enumName(clientAuthFailureNames, int(f), "ClientAuthFailure")
}

// SetClientAuthFailure sets how dialect d refuses a client it cannot
// authenticate.
func (s *Server) SetClientAuthFailure(d Dialect, f ClientAuthFailure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clientAuth[d] = f
}

// refuseClient answers a failed client authentication at d's endpoint in
// the configured shape. basic reports that the client used HTTP Basic.
func (s *Server) refuseClient(w http.ResponseWriter, d Dialect, description string, basic bool) {
	s.mu.Lock()
	f := s.clientAuth[d]
	s.mu.Unlock()
	status, code := http.StatusUnauthorized, "invalid_client"
	switch f {
	case ClientAuth400InvalidClient:
		status = http.StatusBadRequest
	case ClientAuthBare400:
		status, code = http.StatusBadRequest, ""
	}
	switch {
	case d == Endorsed:
		endorsedError(w, status, code, "Invalid client credentials")
	case code == "":
		writeJSON(w, status, contentTypeJSON, map[string]string{"message": description})
	default:
		oauthError(w, status, code, description, basic)
	}
}
