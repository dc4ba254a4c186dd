package fakeprovider

// The account a user's authorization is given by: whoever approves at the
// authorization endpoint (Respond, GET /oauth2/authorize) or enters a device
// code (ApproveDevice) is the account set by SetAccount, or the one a
// login_hint names. Codes, device codes, and the grant family their tokens
// carry on (refresh chains included) remember it, and two endpoints tell it
// to a holder of an access token:
//
//	GET|POST /oauth2/userinfo     OpenID Connect Core §5.3: {"sub","email","email_verified":true,"name"}
//	GET      {PathGitHubAPI}/user GitHub's authenticated user: {"login","id","name","email"}
//	                              (https://docs.github.com/en/rest/users/users#get-the-authenticated-user)
//
// Either answers 401 (WWW-Authenticate: Bearer error="invalid_token", RFC
// 6750 §3, or GitHub's "Bad credentials") for a token that is unknown,
// expired or revoked, and for one no user authorized (client credentials):
// the fake's reading, since such a token has no account to tell; GitHub
// answers an installation token 403, as github.com does.

import (
	"net/http"
	"strings"
)

// PathUserinfo is the OpenID Connect UserInfo endpoint.
const PathUserinfo = "/oauth2/userinfo"

// The account that approves until SetAccount names another.
const (
	DefaultAccountSubject = "fake-user-1"
	DefaultAccountEmail   = "user1@example.test"
)

// fakeAccount is one user of the fake.
type fakeAccount struct {
	sub, email, name string
	githubID         int64 // GitHub's numeric user id: accounts numbered from 1 as they are set
}

// SetAccount makes the account sub, with email, the one that approves
// authorizations and device codes from now on, registering it the first
// time (its name is email's local part, its GitHub login sub, its GitHub id
// the next number from 1). Setting a known sub again changes its email.
func (s *Server) SetAccount(sub, email string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setAccountLocked(sub, email)
}

func (s *Server) setAccountLocked(sub, email string) {
	name, _, _ := strings.Cut(email, "@")
	if name == "" {
		name = sub
	}
	if a := s.accounts[sub]; a != nil {
		a.email, a.name = email, name
	} else {
		s.accounts[sub] = &fakeAccount{sub: sub, email: email, name: name, githubID: int64(len(s.accounts) + 1)}
	}
	s.account = sub
}

// approvingAccount is the account that approves a request carrying
// loginHint (OpenID Connect Core §3.1.2.1): the registered account whose sub
// or email it is, else the one SetAccount set.
func (s *Server) approvingAccount(loginHint string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sub, a := range s.accounts {
		if loginHint != "" && (loginHint == sub || strings.EqualFold(loginHint, a.email)) {
			return sub
		}
	}
	return s.account
}

// AccountOf reports the sub of the account whose authorization issued
// token (an access or refresh token), false for a token no user authorized
// or that this server did not issue.
func (s *Server) AccountOf(token string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	family, ok := uint64(0), false
	if rec, isAccess := s.access[token]; isAccess {
		family, ok = rec.family, true
	} else if rec, isRefresh := s.refresh[token]; isRefresh {
		family, ok = rec.family, true
	}
	sub := s.familyAccount[family]
	return sub, ok && sub != ""
}

// issueAccount issues, as issue does, the first tokens of a user's
// authorization by account: a new grant family that holds it.
func (s *Server) issueAccount(account, client, scope, grant string) issued {
	s.mu.Lock()
	defer s.mu.Unlock()
	family := s.newFamilyLocked()
	s.familyAccount[family] = account
	return s.issueLocked(OAuth2, client, scope, grant, true, family)
}

// bearerAccount is the account behind the request's Bearer access token:
// found reports a valid access token, a nil account one no user authorized.
func (s *Server) bearerAccount(r *http.Request, schemes ...string) (a *fakeAccount, found bool) {
	scheme, token, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	known := false
	for _, want := range schemes {
		known = known || strings.EqualFold(scheme, want)
	}
	rec, ok := s.lookupAccess(strings.TrimSpace(token))
	if !known || !ok {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sub := s.familyAccount[rec.family]; sub != "" {
		copied := *s.accounts[sub]
		return &copied, true
	}
	return nil, true
}

// handleUserinfo serves the UserInfo endpoint (OpenID Connect Core §5.3):
// GET or POST with a Bearer access token in the Authorization header.
func (s *Server) handleUserinfo(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		writeJSON(w, http.StatusMethodNotAllowed, contentTypeJSON, map[string]string{"error": "invalid_request", "error_description": "GET or POST"})
		return
	}
	a, _ := s.bearerAccount(r, "Bearer")
	if a == nil {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, contentTypeJSON, map[string]string{"error": "invalid_token", "error_description": "the access token is not valid for an account"})
		return
	}
	writeJSON(w, http.StatusOK, contentTypeJSON, map[string]any{"sub": a.sub, "email": a.email, "email_verified": true, "name": a.name})
}

// handleGitHubUser serves GET /user as GitHub does for a user access token
// ("Bearer" or GitHub's older "token" scheme).
func (s *Server) handleGitHubUser(w http.ResponseWriter, r *http.Request) {
	if !githubHeaders(w, r) {
		return
	}
	a, found := s.bearerAccount(r, "Bearer", "token")
	switch {
	case !found:
		githubError(w, http.StatusUnauthorized, "Bad credentials")
	case a == nil:
		githubError(w, http.StatusForbidden, "Resource not accessible by integration")
	default:
		writeJSON(w, http.StatusOK, contentTypeJSON, map[string]any{"login": a.sub, "id": a.githubID, "name": a.name, "email": a.email, "type": "User"})
	}
}

// RevokeGrantsOf plays the user sub ending the app's access in their
// account settings at the provider: every live refresh token of the
// grants sub approved is revoked, with their access tokens, and the next
// refresh of one is refused with invalid_grant. It returns how many refresh
// tokens it revoked.
func (s *Server) RevokeGrantsOf(sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	now, n := s.now(), 0
	for _, rec := range s.refresh {
		if s.familyAccount[rec.family] != sub || (rec.state != refreshLive && rec.state != refreshRefused) {
			continue
		}
		rec.state = refreshRevoked
		s.revokeFamilyLocked(now, rec.family)
		n++
	}
	return n
}
