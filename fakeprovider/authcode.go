package fakeprovider

// A user's authorization, as a strict authorization server sees it: the
// authorization endpoint (RFC 6749 §4.1.1, played by Respond and Authorize as
// a user who approves, or by a person on the consent page, consent.go),
// answering in the query (RFC 6749 §4.1.2) or, for
// response_mode=form_post, with a page that POSTs the answer (OAuth 2.0 Form
// Post Response Mode); the code's redemption with PKCE (RFC 6749 §4.1.3,
// RFC 7636 §4.6), the device flow (device.go) and the discovery document
// (RFC 8414).

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
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
	// responseModes: the discovery document's response_modes_supported
	// (SetResponseModesSupported; nil: left out, as many servers do).
	responseModes []string
}

// Response modes of the authorization endpoint (OAuth 2.0 Multiple Response
// Type Encoding Practices §2.1): query, the default for response_type=code,
// and form_post (OAuth 2.0 Form Post Response Mode). Any other is refused.
const (
	responseModeQuery    = "query"
	responseModeFormPost = "form_post"
)

type codeRecord struct {
	client, redirectURI, challenge, scope string
	account                               string // the sub of the approving account (account.go)
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
// user who refuses: the redirect carries error=access_denied. On the consent
// page (Options.ConsentPage) the person's button decides instead.
func (s *Server) SetDenyAuthorizations(deny bool) {
	s.user.mu.Lock()
	defer s.user.mu.Unlock()
	s.user.deny = deny
}

// SetResponseModesSupported makes the discovery document list modes as its
// response_modes_supported (none: the field is left out, which RFC 8414 §2
// reads as query and fragment). The authorization endpoint honours query and
// form_post either way.
func (s *Server) SetResponseModesSupported(modes ...string) {
	s.user.mu.Lock()
	defer s.user.mu.Unlock()
	s.user.responseModes = modes
}

// AuthorizationResponse is the authorization endpoint's answer after the
// user's decision, as the browser carries it to the client.
type AuthorizationResponse struct {
	// RedirectURI is the request's redirect_uri.
	RedirectURI string
	// Params are code and state, or error, error_description and state.
	Params url.Values
	// FormPost: the request asked for response_mode=form_post, so the
	// browser POSTs Params as an application/x-www-form-urlencoded form to
	// RedirectURI; otherwise it follows URL.
	FormPost bool
}

// URL is where a query-mode answer sends the browser: RedirectURI with
// Params added to its query (RFC 6749 §4.1.2).
func (r *AuthorizationResponse) URL() string {
	back, _ := url.Parse(r.RedirectURI) // checked by Respond
	q := back.Query()
	for k, v := range r.Params {
		q[k] = v
	}
	back.RawQuery = q.Encode()
	return back.String()
}

// Respond plays a user who approves the authorization request rawURL. It
// checks the request as a strict authorization endpoint does
// (response_type=code, a known client_id, an https or loopback redirect_uri
// without fragment, code_challenge_method S256 whenever a challenge is
// sent, response_mode absent, query or form_post) and returns the answer:
// code and state, or error=access_denied after SetDenyAuthorizations. The
// approving account is the one a login_hint names, else SetAccount's.
func (s *Server) Respond(rawURL string) (*AuthorizationResponse, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	if err := s.checkAuthorization(q); err != nil {
		return nil, err
	}
	s.user.mu.Lock()
	deny := s.user.deny
	s.user.mu.Unlock()
	denial := ""
	if deny {
		denial = "The user denied the request <b>politely</b>" // HTML, for tests of escaping
	}
	return s.answerAuthorization(q, s.approvingAccount(q.Get("login_hint")), denial), nil
}

// checkAuthorization checks the authorization request q as Respond
// describes; nothing is issued.
func (s *Server) checkAuthorization(q url.Values) error {
	client, redirect, mode := q.Get("client_id"), q.Get("redirect_uri"), q.Get("response_mode")
	s.mu.Lock()
	_, known := s.clients[client]
	s.mu.Unlock()
	back, err := url.Parse(redirect)
	switch {
	case q.Get("response_type") != "code":
		return errors.New("response_type must be code")
	case !known:
		return fmt.Errorf("unknown client_id %q", client)
	case err != nil || back.Fragment != "" || !(back.Scheme == "https" || back.Scheme == "http" && loopback(back.Hostname())):
		return fmt.Errorf("redirect_uri %q is not an https (or loopback http) URL", redirect)
	case q.Has("code_challenge") && q.Get("code_challenge_method") != "S256":
		return errors.New("code_challenge_method must be S256")
	case q.Has("code_challenge") && len(q.Get("code_challenge")) != 43:
		return errors.New("code_challenge must be 43 base64url characters")
	case q.Has("response_mode") && mode != responseModeQuery && mode != responseModeFormPost:
		return fmt.Errorf("unsupported response_mode %q (query or form_post)", mode)
	}
	return nil
}

// answerAuthorization is the answer to q, a request checkAuthorization
// passed: a code issued for account or, with a denial (the
// error_description), error=access_denied.
func (s *Server) answerAuthorization(q url.Values, account, denial string) *AuthorizationResponse {
	client, redirect := q.Get("client_id"), q.Get("redirect_uri")
	answer := url.Values{}
	if q.Has("state") {
		answer.Set("state", q.Get("state"))
	}
	s.user.mu.Lock()
	if denial != "" {
		answer.Set("error", "access_denied")
		answer.Set("error_description", denial)
	} else {
		code := newToken("code_")
		s.user.codes[code] = &codeRecord{client: client, redirectURI: redirect, challenge: q.Get("code_challenge"),
			scope: strings.Join(strings.Fields(q.Get("scope")), " "), account: account, issued: s.now()}
		answer.Set("code", code)
	}
	s.user.mu.Unlock()
	return &AuthorizationResponse{RedirectURI: redirect, Params: answer, FormPost: q.Get("response_mode") == responseModeFormPost}
}

// Authorize is Respond for a request answered in the query: it returns the
// redirect back, redirect_uri with code and state (or error). A request for
// response_mode=form_post is refused before any code is issued: its answer
// travels in no URL (use Respond).
func (s *Server) Authorize(rawURL string) (string, error) {
	if u, err := url.Parse(rawURL); err == nil && u.Query().Get("response_mode") == responseModeFormPost {
		return "", errors.New("response_mode=form_post: the answer is a form POST, not a redirect (use Respond)")
	}
	r, err := s.Respond(rawURL)
	if err != nil {
		return "", err
	}
	return r.URL(), nil
}

func loopback(host string) bool {
	return host == "localhost" || host == "::1" || strings.HasPrefix(host, "127.")
}

// handleAuthorize serves GET /oauth2/authorize as a browser sees it after
// the user approved: Respond, then a 302 to the redirect, or for form_post a
// page that POSTs the answer to redirect_uri as soon as it loads. A refused
// request is a 400 that redirects nowhere. With Options.ConsentPage the
// user's decision is a page instead (consent.go).
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	if s.opts.ConsentPage {
		s.handleConsent(w, r)
		return
	}
	answer, err := s.Respond(r.URL.String())
	if err != nil {
		http.Error(w, "fakeprovider: "+err.Error(), http.StatusBadRequest)
		return
	}
	writeAuthorizationAnswer(w, r, answer, http.StatusFound)
}

// writeAuthorizationAnswer sends the browser back with answer: a redirect
// with status, or for form_post a page that POSTs the answer on load.
func writeAuthorizationAnswer(w http.ResponseWriter, r *http.Request, answer *AuthorizationResponse, status int) {
	if !answer.FormPost {
		http.Redirect(w, r, answer.URL(), status)
		return
	}
	var page bytes.Buffer
	if err := formPostPage.Execute(&page, answer); err != nil {
		http.Error(w, "fakeprovider: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store") // the page holds a code
	_, _ = w.Write(page.Bytes())
}

// formPostPage is the form_post answer, after the specification's Appendix A:
// hidden fields submitted on load, a button for a browser without scripts.
// html/template escapes every value.
var formPostPage = template.Must(template.New("form_post").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Submit This Form</title></head>
<body onload="javascript:document.forms[0].submit()">
<form method="post" action="{{.RedirectURI}}">
{{range $k, $v := .Params}}<input type="hidden" name="{{$k}}" value="{{index $v 0}}"/>
{{end}}<noscript><button type="submit">Continue</button></noscript>
</form>
</body></html>
`))

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
	writeOAuth2Token(w, s.issueAccount(rec.account, clientID, rec.scope, grantAuthorizationCode), "Bearer")
}

func challenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// handleDiscovery serves the OpenID Connect discovery document of this server.
func (s *Server) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	base := s.URL()
	doc := map[string]any{
		"issuer":                           base,
		"authorization_endpoint":           base + PathAuthorize,
		"token_endpoint":                   base + PathOAuth2Token,
		"device_authorization_endpoint":    base + PathDeviceAuthorization,
		"revocation_endpoint":              base + PathRevoke,
		"userinfo_endpoint":                base + PathUserinfo,
		"response_types_supported":         []string{"code"},
		"grant_types_supported":            []string{grantAuthorizationCode, grantRefreshToken, grantClientCredentials, grantDeviceCode},
		"code_challenge_methods_supported": []string{"S256"},
	}
	s.user.mu.Lock()
	if s.user.responseModes != nil {
		doc["response_modes_supported"] = s.user.responseModes
	}
	s.user.mu.Unlock()
	writeJSON(w, http.StatusOK, contentTypeJSON, doc)
}
