package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// githubAPI is a test GitHub: an installation 42 on the user account
// "octo" (not an organization), tokens that expire an hour from sigNow.
type githubAPI struct {
	mu       sync.Mutex
	requests []*http.Request
	bodies   []string
	repos    int // repositories in a token answer
}

func (g *githubAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	g.mu.Lock()
	g.requests, g.bodies = append(g.requests, r), append(g.bodies, string(b))
	repos := g.repos
	g.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch r.Method + " " + r.URL.Path {
	case "GET /api/v3/orgs/octo/installation":
		w.WriteHeader(404)
		io.WriteString(w, `{"message":"Not Found","documentation_url":"https://docs.github.com/rest"}`)
	case "GET /api/v3/users/octo/installation":
		io.WriteString(w, `{"id":42,"account":{"login":"octo"}}`)
	case "POST /api/v3/app/installations/42/access_tokens":
		list := make([]string, repos)
		for i := range list {
			list[i] = fmt.Sprintf(`{"id":%d,"name":"repo-%d","full_name":"octo/repo-%d","description":%q}`, i, i, i, strings.Repeat("x", 6000))
		}
		w.WriteHeader(201)
		fmt.Fprintf(w, `{"token":"ghs_opaque","expires_at":%q,"permissions":{"contents":"read","issues":"write"},"repository_selection":"selected","repositories":[%s]}`,
			sigNow.Add(time.Hour).Format(time.RFC3339), strings.Join(list, ","))
	case "POST /api/v3/app/installations/7/access_tokens":
		w.WriteHeader(401)
		io.WriteString(w, `{"message":"'Expiration time' claim ('exp') is too far in the future","documentation_url":"https://docs.github.com/rest"}`)
	case "POST /api/v3/app/installations/422/access_tokens":
		w.WriteHeader(422)
		io.WriteString(w, `{"message":"There is at least one repository that does not exist or is not accessible to the parent installation.","documentation_url":"https://docs.github.com/rest"}`)
	case "DELETE /api/v3/installation/token":
		w.WriteHeader(204)
	default:
		w.WriteHeader(404)
	}
}

func startGitHub(t *testing.T, repos int) (*githubAPI, *Endpoint, *Client) {
	t.Helper()
	g := &githubAPI{repos: repos}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	e := &Endpoint{Dialect: GitHubApp, Now: sigClock, Key: &SigningKey{Signer: sigRSA},
		Installation: &Installation{AppID: "1234", Owner: "octo", APIURL: srv.URL + "/api/v3/",
			Repositories: []string{"repo-1"}, RepositoryIDs: []int64{5}, Permissions: map[string]string{"contents": "read"}}}
	return g, e, &Client{HTTP: srv.Client()}
}

// TestGitHubInstallationToken: the installation is found on a user account
// (the organization lookup answers 404), then the token is minted with an
// app JWT and GitHub's headers, narrowed as configured; expiry, permissions
// and repositories come from the answer, which may be megabytes long.
func TestGitHubInstallationToken(t *testing.T) {
	g, e, c := startGitHub(t, 600)
	ctx := context.Background()
	if !e.NeedsInstallationLookup() {
		t.Fatal("NeedsInstallationLookup = false with an owner and no installation id")
	}
	id, err := c.FindInstallation(ctx, e)
	if err != nil || id != "42" {
		t.Fatalf("FindInstallation = %q, %v; want 42", id, err)
	}
	e.Installation.InstallationID = id
	tok, err := c.Exchange(ctx, e, GrantInstallationToken, "")
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if tok.AccessToken != "ghs_opaque" || tok.ExpiresIn != time.Hour || tok.Permissions["issues"] != "write" || len(tok.Repositories) != 600 {
		t.Errorf("token = %q, expires in %s, permissions %v, %d repositories", tok.AccessToken, tok.ExpiresIn, tok.Permissions, len(tok.Repositories))
	}
	for i, r := range g.requests {
		if r.Header.Get("Accept") != "application/vnd.github+json" || r.Header.Get("X-GitHub-Api-Version") != "2022-11-28" || r.Header.Get("User-Agent") == "" {
			t.Errorf("request %d (%s %s): headers %v", i, r.Method, r.URL.Path, r.Header)
		}
		jwt, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		_, claims := verifiedJWT(t, jwt, &sigRSA.PublicKey, RS256)
		if claims["iss"] != "1234" {
			t.Errorf("request %d: app JWT claims %v, want iss 1234", i, claims)
		}
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(g.bodies[2]), &body); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(body["repositories"]) != "[repo-1]" || fmt.Sprint(body["repository_ids"]) != "[5]" || fmt.Sprint(body["permissions"]) != "map[contents:read]" {
		t.Errorf("access_tokens body = %s", g.bodies[2])
	}
}

// TestGitHubRefusalAndRevoke: GitHub's refusal is a Refused error carrying
// its message; Revoke deletes the token with the token itself.
func TestGitHubRefusalAndRevoke(t *testing.T) {
	g, e, c := startGitHub(t, 0)
	e.Installation.InstallationID = "7"
	_, err := c.Exchange(context.Background(), e, GrantInstallationToken, "")
	var pe *Error
	if !errors.As(err, &pe) || pe.Class != Refused || pe.Status != 401 || !strings.Contains(pe.Description, "too far in the future") {
		t.Errorf("refusal = %v, want a refused 401 with GitHub's message", err)
	}
	if err := c.Revoke(context.Background(), e, "ghs_opaque"); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	last := g.requests[len(g.requests)-1]
	if last.Method != "DELETE" || last.Header.Get("Authorization") != "Bearer ghs_opaque" {
		t.Errorf("revoke request: %s %s %q", last.Method, last.URL.Path, last.Header.Get("Authorization"))
	}
	if (&Endpoint{Dialect: OAuth2}).Revocable() {
		t.Error("oauth2 is revocable; only github_app is")
	}
}
