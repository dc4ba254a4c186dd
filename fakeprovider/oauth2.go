package fakeprovider

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// oauth2Token is the RFC 6749 §5.1 success body.
type oauth2Token struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
	refreshExpiry
}

// oauthError writes an RFC 6749 §5.2 error. For invalid_client after HTTP
// Basic, §5.2 requires WWW-Authenticate naming the scheme the client used.
func oauthError(w http.ResponseWriter, status int, code, description string, basic bool) {
	if status == http.StatusUnauthorized && basic {
		w.Header().Set("WWW-Authenticate", `Basic realm="fakeprovider"`)
	}
	writeJSON(w, status, contentTypeJSON, map[string]string{
		"error":             code,
		"error_description": description,
	})
}

// handleOAuth2 serves POST /oauth2/token: RFC 6749 §4.4 client credentials
// and §6 refresh, with a form body and client authentication by HTTP Basic
// (§2.3.1), by client_id and client_secret in the body, or by a client
// assertion (private_key_jwt), never two of them.
func (s *Server) handleOAuth2(w http.ResponseWriter, x *exchange) {
	r := x.r
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "the token endpoint accepts POST only", false)
		return
	}
	if mediaType(r) != contentTypeForm {
		oauthError(w, http.StatusBadRequest, "invalid_request", "Content-Type must be application/x-www-form-urlencoded", false)
		return
	}
	form, err := url.ParseQuery(string(x.body))
	if err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "malformed form body", false)
		return
	}
	grant := form.Get("grant_type")
	for k, v := range form {
		// §3.2: parameters must not be included more than once; RFC 8707
		// §2.1 repeats resource, RFC 8693 §2.1 a token exchange's audience.
		if len(v) > 1 && k != "resource" && (k != "audience" || grant != grantTokenExchange) {
			oauthError(w, http.StatusBadRequest, "invalid_request", "parameter "+k+" is repeated", false)
			return
		}
	}
	if q := r.URL.Query(); q.Has("client_secret") || q.Has("refresh_token") || q.Has("subject_token") || q.Has("actor_token") {
		oauthError(w, http.StatusBadRequest, "invalid_request", "credentials must be sent in the body, not in the URL", false)
		return
	}
	if grant == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "grant_type is required", false)
		return
	}

	clientID, basic, ok := s.authenticateOAuth2Client(w, x, form)
	if !ok {
		return
	}

	switch grant {
	case grantClientCredentials:
		scope := strings.Join(strings.Fields(form.Get("scope")), " ")
		s.mu.Lock()
		p := s.policyLocked(clientID)
		s.mu.Unlock()
		if err := p.scopeAllowed(scope); err != nil {
			oauthError(w, http.StatusBadRequest, "invalid_scope", err.Error(), basic)
			return
		}
		aud, err := p.targetsAllowed(form["resource"], form["audience"])
		if err != nil {
			oauthError(w, http.StatusBadRequest, "invalid_target", err.Error(), basic)
			return
		}
		s.mu.Lock()
		out := s.issueForLocked(OAuth2, clientID, target{scope: scope, refreshScope: scope, aud: aud, refreshAud: aud},
			grantClientCredentials, true, s.newFamilyLocked())
		s.mu.Unlock()
		writeOAuth2Token(w, out, "Bearer")
	case grantRefreshToken:
		rt := form.Get("refresh_token")
		if rt == "" {
			oauthError(w, http.StatusBadRequest, "invalid_request", "refresh_token is required", basic)
			return
		}
		scope := strings.Join(strings.Fields(form.Get("scope")), " ")
		out, err := s.redeem(OAuth2, rt, clientID, true, ask{scope: scope, resources: form["resource"]})
		switch {
		case errors.Is(err, errRefreshScope):
			oauthError(w, http.StatusBadRequest, "invalid_scope", err.Error(), basic)
		case errors.Is(err, errRefreshTarget):
			oauthError(w, http.StatusBadRequest, "invalid_target", err.Error(), basic)
		case err != nil:
			writeRefusal(w, err)
		default:
			writeOAuth2Token(w, out, "Bearer")
		}
	case grantAuthorizationCode:
		s.handleAuthorizationCode(w, clientID, basic, form)
	case grantDeviceCode:
		s.handleDeviceCode(w, clientID, basic, form)
	case grantTokenExchange:
		s.handleTokenExchange(w, clientID, basic, form)
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "supported grant types: client_credentials, refresh_token, authorization_code, device_code", basic)
	}
}

// authenticateOAuth2Client authenticates the client of a request to an
// oauth2 endpoint that takes the token endpoint's client authentication (the
// token and revocation endpoints): by a client assertion, else by §2.3.1.
// false when it has answered.
func (s *Server) authenticateOAuth2Client(w http.ResponseWriter, x *exchange, form url.Values) (clientID string, basic, ok bool) {
	if form.Has("client_assertion_type") || form.Has("client_assertion") {
		clientID, ok = s.oauth2ClientAssertion(w, x, form)
		return clientID, false, ok
	}
	return s.authenticateOAuth2(w, x.r, form)
}

// authenticateOAuth2 applies §2.3.1. On failure it has already answered (in
// the shape SetClientAuthFailure chose) and returns ok false. basic reports
// that the client used HTTP Basic.
func (s *Server) authenticateOAuth2(w http.ResponseWriter, r *http.Request, form url.Values) (clientID string, basic, ok bool) {
	if authz := r.Header.Get("Authorization"); authz != "" {
		id, secret, err := parseBasic(authz)
		if err != nil {
			s.refuseClient(w, OAuth2, "unsupported or malformed Authorization header", true)
			return "", true, false
		}
		if form.Has("client_secret") {
			oauthError(w, http.StatusBadRequest, "invalid_request", "client authenticated with both HTTP Basic and client_secret in the body", true)
			return "", true, false
		}
		if form.Has("client_id") && form.Get("client_id") != id {
			oauthError(w, http.StatusBadRequest, "invalid_request", "client_id in the body differs from the HTTP Basic client id", true)
			return "", true, false
		}
		if !s.clientOK(id, secret) {
			s.refuseClient(w, OAuth2, "client authentication failed", true)
			return "", true, false
		}
		return id, true, true
	}
	id := form.Get("client_id")
	if id == "" || !form.Has("client_secret") {
		s.refuseClient(w, OAuth2, "client authentication is required (HTTP Basic or client_id and client_secret)", false)
		return "", false, false
	}
	if !s.clientOK(id, form.Get("client_secret")) {
		s.refuseClient(w, OAuth2, "client authentication failed", false)
		return "", false, false
	}
	return id, false, true
}

// oauth2ClientAssertion authenticates a private_key_jwt client (RFC 7523
// §2.2, https://datatracker.ietf.org/doc/html/rfc7523#section-2.2), as
// generic authorization servers offer it (OpenID Connect Core §9): a JWT
// signed by a key registered with AddAssertionKey under the client id, no
// other method beside it (RFC 6749 §2.3), whose aud is the token endpoint
// (RFC 7523 §3: the token URL identifies the server), wherever it is sent.
// false when it has answered.
func (s *Server) oauth2ClientAssertion(w http.ResponseWriter, x *exchange, form url.Values) (string, bool) {
	if x.r.Header.Get("Authorization") != "" || form.Has("client_secret") {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the client used more than one authentication method", false)
		return "", false
	}
	return s.clientAssertion(w, x, form, jwtRules{algs: []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.ES256}, ahead: time.Hour,
		audience: s.URL() + PathOAuth2Token},
		"no key of the client matches the client_assertion")
}

func writeOAuth2Token(w http.ResponseWriter, out issued, tokenType string) {
	writeJSON(w, http.StatusOK, contentTypeJSON, oauth2Token{
		AccessToken:   out.access,
		TokenType:     tokenType,
		ExpiresIn:     out.expiresIn,
		RefreshToken:  out.refresh,
		Scope:         out.scope,
		refreshExpiry: out.refreshExpiry,
	})
}
