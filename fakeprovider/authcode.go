package fakeprovider

// A user's authorization, as a strict authorization server sees it: the
// authorization endpoint (RFC 6749 §4.1.1, played by Authorize as a user who
// approves), the code's redemption with PKCE (RFC 6749 §4.1.3, RFC 7636
// §4.6), the device flow (device.go) and the discovery document (RFC 8414).

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Paths of the user-authorization endpoints.
const (
	PathAuthorize           = "/oauth2/authorize"
	PathDeviceAuthorization = "/oauth2/device_authorization"
	PathDevice              = "/device"
	PathDiscovery           = "/.well-known/openid-configuration"
)

const (
	grantAuthorizationCode = "authorization_code"
	grantDeviceCode        = "urn:ietf:params:oauth:grant-type:device_code"
	codeLifetime           = 10 * time.Minute // RFC 6749 §4.1.2 recommends at most 10 minutes
)

// userFlows holds codes and device authorizations.
type userFlows struct {
	mu      sync.Mutex
	deny    bool // Authorize answers error=access_denied
	codes   map[string]*codeRecord
	devices map[string]*deviceRecord // by device code
	// device flow timing (SetDeviceTiming)
	deviceInterval, deviceLifetime time.Duration
}

type codeRecord struct {
	client, redirectURI, challenge, scope string
	issued                                time.Time
	used                                  bool
}

func (s *Server) registerUserFlows(mux *http.ServeMux) {
	s.user.codes, s.user.devices = map[string]*codeRecord{}, map[string]*deviceRecord{}
	mux.HandleFunc(PathAuthorize, s.handleAuthorize)
	mux.Handle(PathDeviceAuthorization, s.tokenEndpoint(OAuth2, s.handleDeviceAuthorization))
	mux.HandleFunc(PathDiscovery, s.handleDiscovery)
}

// SetDenyAuthorizations makes Authorize (and GET /oauth2/authorize) play a
// user who refuses: the redirect carries error=access_denied.
func (s *Server) SetDenyAuthorizations(deny bool) {
	s.user.mu.Lock()
	defer s.user.mu.Unlock()
	s.user.deny = deny
}

// Authorize plays a user who approves the authorization request rawURL. It
// checks the request as a strict authorization endpoint does
// (response_type=code, a known client_id, an https or loopback redirect_uri
// without fragment, code_challenge_method S256 whenever a challenge is
// sent) and returns the redirect back: redirect_uri with code and state, or
// with error=access_denied after SetDenyAuthorizations.
func (s *Server) Authorize(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", err
	}
	q := u.Query()
	client, redirect := q.Get("client_id"), q.Get("redirect_uri")
	s.mu.Lock()
	_, known := s.clients[client]
	s.mu.Unlock()
	back, err := url.Parse(redirect)
	switch {
	case q.Get("response_type") != "code":
		return "", errors.New("response_type must be code")
	case !known:
		return "", fmt.Errorf("unknown client_id %q", client)
	case err != nil || back.Fragment != "" || !(back.Scheme == "https" || back.Scheme == "http" && loopback(back.Hostname())):
		return "", fmt.Errorf("redirect_uri %q is not an https (or loopback http) URL", redirect)
	case q.Has("code_challenge") && q.Get("code_challenge_method") != "S256":
		return "", errors.New("code_challenge_method must be S256")
	case q.Has("code_challenge") && len(q.Get("code_challenge")) != 43:
		return "", errors.New("code_challenge must be 43 base64url characters")
	}
	answer := back.Query()
	if q.Has("state") {
		answer.Set("state", q.Get("state"))
	}
	s.user.mu.Lock()
	if s.user.deny {
		answer.Set("error", "access_denied")
		answer.Set("error_description", "The user denied the request <b>politely</b>")
	} else {
		code := newToken("code_")
		s.user.codes[code] = &codeRecord{client: client, redirectURI: redirect, challenge: q.Get("code_challenge"),
			scope: strings.Join(strings.Fields(q.Get("scope")), " "), issued: s.now()}
		answer.Set("code", code)
	}
	s.user.mu.Unlock()
	back.RawQuery = answer.Encode()
	return back.String(), nil
}

func loopback(host string) bool {
	return host == "localhost" || host == "::1" || strings.HasPrefix(host, "127.")
}

// handleAuthorize serves GET /oauth2/authorize: Authorize, then a 302 to
// the redirect, as a browser would see it after the user approved.
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	back, err := s.Authorize(r.URL.String())
	if err != nil {
		http.Error(w, "fakeprovider: "+err.Error(), http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, back, http.StatusFound)
}

// handleAuthorizationCode redeems a code at the token endpoint: once, by the
// client it was issued to, within 10 minutes, with the same redirect_uri,
// and with the PKCE verifier whose S256 hash is the challenge.
func (s *Server) handleAuthorizationCode(w http.ResponseWriter, clientID string, basic bool, form url.Values) {
	s.user.mu.Lock()
	rec := s.user.codes[form.Get("code")]
	var problem string
	switch {
	case rec == nil:
		problem = "unknown authorization code"
	case rec.used:
		problem = "authorization code already used"
	case rec.client != clientID:
		problem = "authorization code issued to another client"
	case !s.now().Before(rec.issued.Add(codeLifetime)):
		problem = "authorization code expired"
	case form.Get("redirect_uri") != rec.redirectURI:
		problem = "redirect_uri differs from the authorization request's"
	case rec.challenge != "" && challenge(form.Get("code_verifier")) != rec.challenge:
		problem = "PKCE verification failed"
	case rec.challenge == "" && form.Has("code_verifier"):
		problem = "code_verifier sent for an authorization without code_challenge"
	}
	if rec != nil {
		rec.used = true // RFC 6749 §4.1.2: a code works once, whatever the outcome
	}
	s.user.mu.Unlock()
	if problem != "" {
		oauthError(w, http.StatusBadRequest, "invalid_grant", problem, basic)
		return
	}
	writeOAuth2Token(w, s.issue(OAuth2, clientID, rec.scope, grantAuthorizationCode, true), "Bearer")
}

func challenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// handleDiscovery serves the OpenID Connect discovery document of this server.
func (s *Server) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	base := s.URL()
	writeJSON(w, http.StatusOK, contentTypeJSON, map[string]any{
		"issuer":                           base,
		"authorization_endpoint":           base + PathAuthorize,
		"token_endpoint":                   base + PathOAuth2Token,
		"device_authorization_endpoint":    base + PathDeviceAuthorization,
		"response_types_supported":         []string{"code"},
		"grant_types_supported":            []string{grantAuthorizationCode, grantRefreshToken, grantClientCredentials, grantDeviceCode},
		"code_challenge_methods_supported": []string{"S256"},
	})
}
