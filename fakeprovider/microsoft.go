package fakeprovider

// Microsoft Entra ID's client credentials with a certificate credential, as
// Microsoft documents them
// (https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow,
// .../certificate-credentials): POST /{tenant}/oauth2/v2.0/token with
// client_id, scope (one resource's /.default), grant_type=client_credentials
// and a client assertion signed PS256 or RS256 whose x5t#S256 header names
// a registered certificate (AddAssertionCertificate), iss and sub the client
// id, aud this token URL, a jti never seen before. Errors carry AADSTS codes.
//
// And a user's refresh token at the same URL
// (https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow#refresh-the-access-token):
// one refresh token, of a consent spanning resources, redeems for any of
// them: "If the scopes specified in this request span multiple resource
// servers, then the Microsoft identity platform returns a token for the
// resource specified in the first scope." The access token is that
// resource's (Audiences), with its consented scopes for
// "<resource>/.default"; a resource the user never consented to is
// invalid_grant AADSTS65001. A new refresh token comes back, of the same
// consent; the one presented stays valid ("The Microsoft identity platform
// doesn't revoke old refresh tokens when used to fetch new access tokens",
// https://learn.microsoft.com/en-us/entra/identity-platform/refresh-tokens).
// The client authenticates with client_secret (AddClient) or a client
// assertion. Whether a refresh must name a scope is not clear from the
// page (its example always sends one): a switch (SetMicrosoftRefreshScope),
// strict by default.

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// PathMicrosoftToken is the fake's login.microsoftonline.com token endpoint
// pattern; MicrosoftTokenPath fills in a tenant.
const PathMicrosoftToken = "/microsoft/{tenant}/oauth2/v2.0/token"

// MicrosoftTokenPath is the token path of tenant.
func MicrosoftTokenPath(tenant string) string {
	return strings.Replace(PathMicrosoftToken, "{tenant}", tenant, 1)
}

func (s *Server) handleMicrosoft(w http.ResponseWriter, x *exchange) {
	form, ok := tokenForm(w, x)
	if !ok {
		return
	}
	if form.Get("grant_type") == grantRefreshToken {
		s.handleMicrosoftRefresh(w, x, form)
		return
	}
	scopes := scopeList(form.Get("scope"))
	switch {
	case form.Get("grant_type") != grantClientCredentials:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type.", false)
		return
	case len(scopes) == 0:
		oauthError(w, http.StatusBadRequest, "invalid_request", "AADSTS90014: The required field 'scope' is missing from the credential.", false)
		return
	case len(scopes) != 1 || !strings.HasSuffix(scopes[0], "/.default"):
		oauthError(w, http.StatusBadRequest, "invalid_scope", "AADSTS1002012: Client credential flows must have a scope value with /.default suffixed to the resource identifier.", false)
		return
	}
	client, ok := s.clientAssertion(w, x, form, jwtRules{algs: []jose.SignatureAlgorithm{jose.PS256, jose.RS256}, x5tS256: true},
		"AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application.")
	if !ok {
		return
	}
	out := s.issue(MicrosoftCertificate, client, scopes[0], grantClientCredentials, false)
	writeJSON(w, http.StatusOK, contentTypeJSON, map[string]any{"token_type": "Bearer", "expires_in": out.expiresIn,
		"ext_expires_in": out.expiresIn, "access_token": out.access})
}

// clientAssertion authenticates a private_key_jwt client (RFC 7523 §2.2):
// the assertion type, then the assertion under r, with iss and sub the
// client id (and client_id, when sent, the same) and aud r's audience, by
// default this token URL.
// unknownKey is the provider's words for a key it does not know. false when
// it has answered.
func (s *Server) clientAssertion(w http.ResponseWriter, x *exchange, form map[string][]string, r jwtRules, unknownKey string) (string, bool) {
	get := func(k string) string {
		if v := form[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	if get("client_assertion_type") != clientAssertionType || get("client_assertion") == "" {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client_assertion_type must be "+clientAssertionType+", with a client_assertion", false)
		return "", false
	}
	if r.audience == "" {
		r.audience = s.selfURL(x.r)
	}
	r.jti, r.subject = true, true
	c, err := s.verifyJWT(get("client_assertion"), r)
	switch {
	case err == errKey:
		oauthError(w, http.StatusUnauthorized, "invalid_client", unknownKey, false)
	case err != nil:
		oauthError(w, http.StatusUnauthorized, "invalid_client", "the client assertion is invalid: "+err.Error(), false)
	case c.Issuer != c.Subject || (get("client_id") != "" && get("client_id") != c.Issuer):
		oauthError(w, http.StatusUnauthorized, "invalid_client", "iss, sub and client_id must name the same client", false)
	default:
		return c.Issuer, true
	}
	return "", false
}

// MicrosoftRefreshScope is whether a refresh at the Microsoft token URL
// must name a scope, which the v2 page leaves unclear.
type MicrosoftRefreshScope int

const (
	// MicrosoftRefreshScopeRequired (the default): a refresh without scope
	// is invalid_request AADSTS90014.
	MicrosoftRefreshScopeRequired MicrosoftRefreshScope = iota
	// MicrosoftRefreshScopeOptional: without scope, the token is for the
	// consent's first resource, with all its consented scopes.
	MicrosoftRefreshScopeOptional
)

// SetMicrosoftRefreshScope sets whether a Microsoft refresh must name a scope.
func (s *Server) SetMicrosoftRefreshScope(m MicrosoftRefreshScope) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.microsoftRefreshScope = m
}

// graphResource is Microsoft Graph, the resource of a scope without one
// ("User.Read").
const graphResource = "https://graph.microsoft.com"

// SeedMicrosoftRefreshToken issues a refresh token of a user's consent to
// clientID for scopes, as the authorization code flow would: each a full
// scope ("https://graph.microsoft.com/User.Read",
// "https://management.azure.com/user_impersonation") or an OpenID one
// ("offline_access", which buys the refresh tokens of later refreshes).
func (s *Server) SeedMicrosoftRefreshToken(clientID string, scopes ...string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, _ := s.newRefreshLocked(MicrosoftCertificate, clientID, strings.Join(scopes, " "), s.newFamilyLocked())
	return rt
}

// microsoftResource is the resource a scope belongs to and the scope in
// full ("" for an OpenID scope): "https://host/x" is https://host's,
// "api://app/x" api://app's, a bare name Graph's.
func microsoftResource(scope string) (resource, full string) {
	switch {
	case slices.Contains([]string{"openid", "profile", "email", "offline_access"}, scope):
		return "", ""
	case strings.Contains(scope, "://"):
		i := strings.LastIndex(scope, "/")
		if i <= strings.Index(scope, "://")+2 {
			return scope, scope // a resource without a scope name
		}
		return scope[:i], scope
	}
	return graphResource, graphResource + "/" + scope
}

func (s *Server) handleMicrosoftRefresh(w http.ResponseWriter, x *exchange, form url.Values) {
	client := form.Get("client_id")
	switch {
	case form.Has("client_assertion"):
		var ok bool
		if client, ok = s.clientAssertion(w, x, form, jwtRules{algs: []jose.SignatureAlgorithm{jose.PS256, jose.RS256}, x5tS256: true},
			"AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application."); !ok {
			return
		}
	case !form.Has("client_secret"):
		oauthError(w, http.StatusUnauthorized, "invalid_client", "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.", false)
		return
	case !s.clientOK(client, form.Get("client_secret")):
		oauthError(w, http.StatusUnauthorized, "invalid_client", "AADSTS7000215: Invalid client secret provided.", false)
		return
	}
	rt := form.Get("refresh_token")
	if rt == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "AADSTS900144: The request body must contain the following parameter: 'refresh_token'.", false)
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.refresh[rt]
	switch {
	case !ok || rec.dialect != MicrosoftCertificate || rec.client != client || rec.state == refreshRevoked:
		oauthError(w, http.StatusBadRequest, "invalid_grant", "AADSTS70000: Provided grant is invalid or malformed.", false)
		return
	case !rec.expires.IsZero() && !s.now().Before(rec.expires):
		oauthError(w, http.StatusBadRequest, "invalid_grant", "AADSTS700082: The refresh token has expired due to inactivity.", false)
		return
	case form.Get("scope") == "" && s.microsoftRefreshScope == MicrosoftRefreshScopeRequired:
		oauthError(w, http.StatusBadRequest, "invalid_request", "AADSTS90014: The required field 'scope' is missing.", false)
		return
	}

	// The consent, by resource, in its order.
	var resources []string
	consented := map[string][]string{}
	for _, sc := range scopeList(rec.scope) {
		if res, full := microsoftResource(sc); res != "" {
			if consented[res] == nil {
				resources = append(resources, res)
			}
			consented[res] = append(consented[res], full)
		}
	}
	// The first scope's resource, and what is asked of it.
	var resource string
	var asked []string
	for _, sc := range scopeList(form.Get("scope")) {
		res, full := microsoftResource(sc)
		if res == "" || (resource != "" && res != resource) {
			continue // an OpenID scope, or another resource's: not in this token
		}
		resource, asked = res, append(asked, full)
	}
	if resource == "" && len(resources) > 0 {
		resource = resources[0] // no resource named: the consent's first
	}
	if len(consented[resource]) == 0 {
		oauthError(w, http.StatusBadRequest, "invalid_grant",
			"AADSTS65001: The user or administrator has not consented to use the application with ID '"+client+"'. Send an interactive authorization request for this user and resource.", false)
		return
	}
	granted := consented[resource]
	for _, a := range asked {
		if a == resource+"/.default" {
			continue
		}
		if !slices.Contains(granted, a) {
			oauthError(w, http.StatusBadRequest, "invalid_grant",
				"AADSTS65001: The user or administrator has not consented to use the application with ID '"+client+"'. Send an interactive authorization request for this user and resource.", false)
			return
		}
	}
	if len(asked) > 0 && !slices.Contains(asked, resource+"/.default") {
		granted = asked
	}
	scope := strings.Join(granted, " ")
	withRefresh := slices.Contains(scopeList(rec.scope), "offline_access")
	out := s.issueForLocked(MicrosoftCertificate, client, target{scope: scope, refreshScope: rec.scope, aud: []string{resource}},
		grantRefreshToken, withRefresh, rec.family)
	body := map[string]any{"token_type": "Bearer", "scope": scope, "expires_in": out.expiresIn,
		"ext_expires_in": out.expiresIn, "access_token": out.access}
	if out.refresh != "" {
		body["refresh_token"] = out.refresh
	}
	writeJSON(w, http.StatusOK, contentTypeJSON, body)
}
