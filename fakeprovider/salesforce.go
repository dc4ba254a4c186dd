package fakeprovider

// Salesforce's OAuth 2.0 JWT bearer flow, as Salesforce documents it
// (https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm):
// POST the JWT-bearer grant with an RS256 assertion whose iss is the
// connected app's consumer key, sub the username of a user who approved the
// app, aud https://login.salesforce.com (a sandbox: https://test.salesforce.com)
// and exp within 3 minutes. The answer has no expires_in and no refresh
// token. Errors: invalid_client_id for an unknown consumer key,
// invalid_grant otherwise. Stricter than Salesforce: a jti is required and
// never repeats.

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// PathSalesforceToken is the fake's login.salesforce.com token endpoint.
const PathSalesforceToken = "/salesforce/services/oauth2/token"

// SalesforceAudience is the aud a production org's assertions carry.
const SalesforceAudience = "https://login.salesforce.com"

// AddSalesforceUser records that username approved the connected app consumerKey.
func (s *Server) AddSalesforceUser(consumerKey, username string) {
	s.signed.mu.Lock()
	defer s.signed.mu.Unlock()
	s.signed.salesforceUsers[consumerKey] = append(s.signed.salesforceUsers[consumerKey], username)
}

func (s *Server) handleSalesforce(w http.ResponseWriter, x *exchange) {
	form, ok := jwtBearerForm(w, x)
	if !ok {
		return
	}
	c, err := s.verifyJWT(form.Get("assertion"), jwtRules{algs: []jose.SignatureAlgorithm{jose.RS256},
		audience: SalesforceAudience, ahead: 3 * time.Minute, subject: true, jti: true})
	if errors.Is(err, errKey) {
		oauthError(w, http.StatusBadRequest, "invalid_client_id", "client identifier invalid", false)
		return
	}
	if err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "invalid assertion: "+err.Error(), false)
		return
	}
	s.signed.mu.Lock()
	approved := slices.Contains(s.signed.salesforceUsers[c.Issuer], c.Subject)
	s.signed.mu.Unlock()
	if !approved {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "user hasn't approved this consumer", false)
		return
	}
	out := s.issue(SalesforceJWT, c.Subject, "api", "jwt_bearer", false)
	writeJSON(w, http.StatusOK, contentTypeJSON, map[string]any{
		"access_token": out.access, "token_type": "Bearer", "scope": "api", "instance_url": s.URL(),
		"id": s.URL() + "/id/00Dfake/005fake", "issued_at": strconv.FormatInt(s.now().UnixMilli(), 10),
	})
}
