package fakeprovider

// GitHub App installation tokens, as GitHub documents them
// (https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/generating-a-json-web-token-jwt-for-a-github-app,
// https://docs.github.com/en/rest/apps/apps#create-an-installation-access-token-for-an-app,
// .../rest/apps/installations#revoke-an-installation-access-token), under
// PathGitHubAPI as on GitHub Enterprise Server (https://HOST/api/v3):
//
//	POST   /app/installations/{id}/access_tokens  an app JWT (RS256, iss the app id, exp at most 10 minutes ahead)
//	GET    /orgs/{owner}/installation             the app's installation on an organization (404 for a user)
//	GET    /users/{owner}/installation            ... on a user account (404 for an organization)
//	DELETE /installation/token                    revokes the installation token that authenticates it
//	GET    /user                                  the account of a user access token (account.go)
//
// Every call needs a User-Agent (403 without), and the fake insists on
// Accept: application/vnd.github+json and X-GitHub-Api-Version: 2022-11-28
// (GitHub answers 400 for a version it does not know).

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// PathGitHubAPI is the fake GitHub's REST API root.
const PathGitHubAPI = "/github/api/v3"

const githubDocs = "https://docs.github.com/rest"

// githubInstallation is one installation of an app on an account.
type githubInstallation struct {
	appID, owner string
	org          bool
	repos        []string // names; a repository's id is its index + 1
	permissions  map[string]string
}

// GitHubInstallationPermissions are what every fake installation grants.
var GitHubInstallationPermissions = map[string]string{"contents": "write", "issues": "write", "metadata": "read"}

// AddGitHubInstallation installs app appID on owner's account (an
// organization when org) as installation id, with access to repos.
func (s *Server) AddGitHubInstallation(appID, owner string, org bool, id int64, repos ...string) {
	s.signed.mu.Lock()
	defer s.signed.mu.Unlock()
	s.signed.installations[id] = &githubInstallation{appID: appID, owner: owner, org: org, repos: repos,
		permissions: GitHubInstallationPermissions}
}

// SetGitHubInstallationPermissions replaces what installation id grants
// (GitHubInstallationPermissions by default): a token asking more is
// refused with 422.
func (s *Server) SetGitHubInstallationPermissions(id int64, permissions map[string]string) {
	s.signed.mu.Lock()
	defer s.signed.mu.Unlock()
	if in := s.signed.installations[id]; in != nil {
		in.permissions = permissions
	}
}

// GitHubRevocations counts installation tokens revoked by DELETE /installation/token.
func (s *Server) GitHubRevocations() int {
	s.signed.mu.Lock()
	defer s.signed.mu.Unlock()
	return s.signed.revocations
}

func (s *Server) registerGitHub(mux *http.ServeMux) {
	mux.Handle("POST "+PathGitHubAPI+"/app/installations/{id}/access_tokens", s.tokenEndpoint(GitHubApp, s.handleGitHubToken))
	mux.HandleFunc("GET "+PathGitHubAPI+"/orgs/{owner}/installation", s.handleGitHubInstallation(true))
	mux.HandleFunc("GET "+PathGitHubAPI+"/users/{owner}/installation", s.handleGitHubInstallation(false))
	mux.HandleFunc("DELETE "+PathGitHubAPI+"/installation/token", s.handleGitHubRevoke)
	mux.HandleFunc("GET "+PathGitHubAPI+"/user", s.handleGitHubUser)
}

// githubError answers in GitHub's shape.
func githubError(w http.ResponseWriter, status int, message string) {
	writeJSON(w, status, contentTypeJSON, map[string]string{"message": message, "documentation_url": githubDocs})
}

// githubHeaders checks what every GitHub call must carry; false when it has answered.
func githubHeaders(w http.ResponseWriter, r *http.Request) bool {
	switch {
	case r.Header.Get("User-Agent") == "":
		githubError(w, http.StatusForbidden, "Request forbidden by administrative rules. Please make sure your request has a User-Agent header")
	case r.Header.Get("X-GitHub-Api-Version") != "2022-11-28":
		githubError(w, http.StatusBadRequest, "Unsupported 'X-GitHub-Api-Version' header")
	case r.Header.Get("Accept") != "application/vnd.github+json":
		githubError(w, http.StatusBadRequest, "the fake wants Accept: application/vnd.github+json")
	default:
		return true
	}
	return false
}

// githubApp authenticates an app JWT; false when it has answered.
func (s *Server) githubApp(w http.ResponseWriter, r *http.Request) (string, bool) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		githubError(w, http.StatusUnauthorized, "A JSON web token could not be decoded")
		return "", false
	}
	c, err := s.verifyJWT(raw, jwtRules{algs: []jose.SignatureAlgorithm{jose.RS256}, lifetime: 10 * time.Minute, ahead: 10 * time.Minute})
	if err != nil {
		githubError(w, http.StatusUnauthorized, "A JSON web token could not be decoded: "+err.Error())
		return "", false
	}
	return c.Issuer, true
}

// installation returns a copy of installation id of app, nil when there
// is none.
func (s *Server) installation(app string, id int64) *githubInstallation {
	s.signed.mu.Lock()
	defer s.signed.mu.Unlock()
	if in := s.signed.installations[id]; in != nil && in.appID == app {
		c := *in
		return &c
	}
	return nil
}

func (s *Server) handleGitHubInstallation(org bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !githubHeaders(w, r) {
			return
		}
		app, ok := s.githubApp(w, r)
		if !ok {
			return
		}
		s.signed.mu.Lock()
		var found int64
		for id, in := range s.signed.installations {
			if in.appID == app && in.org == org && strings.EqualFold(in.owner, r.PathValue("owner")) {
				found = id
			}
		}
		s.signed.mu.Unlock()
		if found == 0 {
			githubError(w, http.StatusNotFound, "Not Found")
			return
		}
		writeJSON(w, http.StatusOK, contentTypeJSON, map[string]any{"id": found, "app_id": app, "account": map[string]string{"login": r.PathValue("owner")}})
	}
}

// githubTokenRequest is the access_tokens body.
type githubTokenRequest struct {
	Repositories  []string          `json:"repositories"`
	RepositoryIDs []int64           `json:"repository_ids"`
	Permissions   map[string]string `json:"permissions"`
}

func (s *Server) handleGitHubToken(w http.ResponseWriter, x *exchange) {
	if !githubHeaders(w, x.r) {
		return
	}
	app, ok := s.githubApp(w, x.r)
	if !ok {
		return
	}
	id, _ := strconv.ParseInt(x.r.PathValue("id"), 10, 64)
	in := s.installation(app, id)
	if in == nil {
		githubError(w, http.StatusNotFound, "Not Found")
		return
	}
	var req githubTokenRequest
	if len(x.body) > 0 {
		if err := json.Unmarshal(x.body, &req); err != nil {
			githubError(w, http.StatusBadRequest, "Problems parsing JSON")
			return
		}
	}
	repos, err := in.selected(req)
	if err == nil {
		err = in.allows(req.Permissions)
	}
	if err != nil {
		githubError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	perms := req.Permissions
	if len(perms) == 0 {
		perms = in.permissions
	}
	out := s.issue(GitHubApp, app, "", "installation_token", false)
	body := map[string]any{
		"token":                out.access,
		"expires_at":           s.now().Add(time.Duration(out.expiresIn) * time.Second).UTC().Format(time.RFC3339),
		"permissions":          perms,
		"repository_selection": "all",
	}
	if repos != nil {
		body["repository_selection"], body["repositories"] = "selected", repos
	}
	writeJSON(w, http.StatusCreated, contentTypeJSON, body)
}

// maxGitHubRepositories: "You can specify up to 500 repositories" (the
// access_tokens endpoint's repositories and repository_ids together).
const maxGitHubRepositories = 500

// selected is the repositories a request names, as GitHub lists them (nil
// when it names none: all of the installation's).
func (in *githubInstallation) selected(req githubTokenRequest) ([]map[string]any, error) {
	if len(req.Repositories) == 0 && len(req.RepositoryIDs) == 0 {
		return nil, nil
	}
	if n := len(req.Repositories) + len(req.RepositoryIDs); n > maxGitHubRepositories {
		return nil, fmt.Errorf("Validation Failed: %d repositories were requested; a token may name up to %d", n, maxGitHubRepositories)
	}
	out := []map[string]any{}
	add := func(i int) {
		out = append(out, map[string]any{"id": i + 1, "name": in.repos[i], "full_name": in.owner + "/" + in.repos[i]})
	}
	for _, name := range req.Repositories {
		i := slices.Index(in.repos, name)
		if i < 0 {
			return nil, fmt.Errorf("There is at least one repository that does not exist or is not accessible to the parent installation.")
		}
		add(i)
	}
	for _, id := range req.RepositoryIDs {
		if id < 1 || int(id) > len(in.repos) {
			return nil, fmt.Errorf("There is at least one repository that does not exist or is not accessible to the parent installation.")
		}
		add(int(id) - 1)
	}
	return out, nil
}

// allows checks that every permission asked for is granted at that level:
// one higher than the app's (write where it has read), or one it lacks, is
// refused, as GitHub answers 422.
func (in *githubInstallation) allows(asked map[string]string) error {
	level := map[string]int{"read": 1, "write": 2, "admin": 3}
	for k, v := range asked {
		if level[v] == 0 || level[v] > level[in.permissions[k]] {
			return fmt.Errorf("The permissions requested are not granted to this installation.")
		}
	}
	return nil
}

func (s *Server) handleGitHubRevoke(w http.ResponseWriter, r *http.Request) {
	if !githubHeaders(w, r) {
		return
	}
	token := strings.TrimPrefix(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), "token ")
	s.mu.Lock()
	rec, ok := s.access[token]
	ok = ok && rec.dialect == GitHubApp && s.now().Before(rec.expires) && rec.revoked.IsZero() // an expired or revoked token is no credential
	if ok {
		delete(s.access, token)
	}
	s.mu.Unlock()
	if !ok {
		githubError(w, http.StatusUnauthorized, "Bad credentials")
		return
	}
	s.signed.mu.Lock()
	s.signed.revocations++
	s.signed.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}
