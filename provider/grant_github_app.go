package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// A GitHub App's installation access token, as GitHub documents it:
//   - the app JWT: https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/generating-a-json-web-token-jwt-for-a-github-app
//     (RS256; iss the app id, iat 60 s in the past against clock drift, exp
//     at most 10 minutes later);
//   - the token: https://docs.github.com/en/rest/apps/apps#create-an-installation-access-token-for-an-app
//     (POST {api}/app/installations/{id}/access_tokens, a JSON body that may
//     narrow the token to repositories, repository ids and permissions; the
//     answer's token, expires_at, permissions and repositories);
//   - finding the installation: .../rest/apps/apps#get-an-organization-installation-for-the-authenticated-app
//     and #get-a-user-installation-for-the-authenticated-app;
//   - revoking: https://docs.github.com/en/rest/apps/installations#revoke-an-installation-access-token
//     (DELETE {api}/installation/token, authenticated by the token itself).
// Every call sends Accept: application/vnd.github+json and the REST API
// version header. The token's format is GitHub's business: nothing here
// assumes its length or prefix.

// GrantInstallationToken names the grant.
const GrantInstallationToken Grant = "installation_token"

const (
	// GitHubAPI is github.com's REST API; GitHub Enterprise Server's is
	// https://HOST/api/v3.
	GitHubAPI        = "https://api.github.com"
	githubAPIVersion = "2022-11-28"
	githubMediaType  = "application/vnd.github+json"
	// githubMaxBody: the answer lists each repository as a full object
	// (about 6 KiB), so a token for hundreds of repositories is megabytes.
	githubMaxBody = 32 << 20
)

// Installation is a GitHub App and the installation whose tokens it mints.
type Installation struct {
	AppID string
	// InstallationID, or Owner (an organization or user account) whose
	// installation FindInstallation looks up.
	InstallationID, Owner string
	APIURL                string // "" means GitHubAPI
	// Repositories (names) and RepositoryIDs narrow the token; Permissions
	// ({"contents": "read", …}) narrow what it may do. Empty: the
	// installation's own.
	Repositories  []string
	RepositoryIDs []int64
	Permissions   map[string]string
}

func (a *Installation) api() string {
	if a == nil || a.APIURL == "" {
		return GitHubAPI
	}
	return strings.TrimRight(a.APIURL, "/")
}

// accessTokensURL is where the installation's tokens are minted (the
// installations collection while the installation is not known yet).
func (a *Installation) accessTokensURL() string {
	if a == nil || a.InstallationID == "" {
		return a.api() + "/app/installations"
	}
	return a.api() + "/app/installations/" + url.PathEscape(a.InstallationID) + "/access_tokens"
}

// NeedsInstallationLookup reports whether the installation must be found by
// its owner (FindInstallation) before a token can be minted.
func (e *Endpoint) NeedsInstallationLookup() bool {
	return e.row().assertion.appJWT && e.Installation != nil && e.Installation.InstallationID == "" && e.Installation.Owner != ""
}

var githubInstallation = grant{
	name:    GrantInstallationToken,
	narrows: narrowRepositories, // the narrowed endpoint's Installation

	needs: func(e *Endpoint) Credential {
		switch {
		case e.Installation == nil || e.Installation.AppID == "":
			return NeedsAppID
		case e.Key == nil:
			return NeedsSigningKey
		case e.Installation.InstallationID == "" && e.Installation.Owner == "":
			return NeedsInstallation
		}
		return ""
	},
	exchange: installationToken,
}

// installationToken mints an installation access token.
func installationToken(c *Client, ctx context.Context, e *Endpoint) (*Token, error) {
	app := e.Installation
	if app == nil || app.InstallationID == "" {
		return nil, &Error{Class: Refused, Description: "the installation is not known: look it up by its owner first"}
	}
	body := map[string]any{}
	if len(app.Repositories) > 0 {
		body["repositories"] = app.Repositories
	}
	if len(app.RepositoryIDs) > 0 {
		body["repository_ids"] = app.RepositoryIDs
	}
	if len(app.Permissions) > 0 {
		body["permissions"] = app.Permissions
	}
	r := e.Redactor()
	req, err := e.githubRequest(ctx, http.MethodPost, app.accessTokensURL(), body, "")
	if err != nil {
		return nil, r.refusal(err)
	}
	big := *c
	big.BodyLimit = githubMaxBody
	status, contentType, retry, raw, err := big.roundTrip(req, r)
	if err != nil {
		return nil, err
	}
	tok, err := parseInstallationToken(status, contentType, raw, e.now())
	if err != nil {
		return nil, cleaned(err, r, retry)
	}
	return tok, nil
}

// installationJSON is the access_tokens answer, as far as a token needs.
type installationJSON struct {
	Token        string            `json:"token"`
	ExpiresAt    time.Time         `json:"expires_at"`
	Permissions  map[string]string `json:"permissions"`
	Repositories []struct {
		Name string `json:"name"`
	} `json:"repositories"`
}

// parseInstallationToken reads an access_tokens answer at now. A failure is
// GitHub's {"message", "documentation_url"}, read like any error answer.
func parseInstallationToken(status int, contentType string, body []byte, now time.Time) (*Token, error) {
	if status < 200 || status > 299 {
		return nil, githubError(status, contentType, body)
	}
	var ij installationJSON
	if err := json.Unmarshal(body, &ij); err != nil {
		return nil, &Error{Class: Refused, Status: status, Description: "GitHub's answer is not a usable installation token: " + err.Error()}
	}
	if ij.Token == "" {
		return nil, &Error{Class: Refused, Status: status, Description: "GitHub's answer has no token"}
	}
	tok := &Token{AccessToken: ij.Token, TokenType: "Bearer", Permissions: ij.Permissions}
	if !ij.ExpiresAt.IsZero() {
		tok.ExpiresIn = min(max(ij.ExpiresAt.Sub(now), 0), maxLifetime)
	}
	for _, r := range ij.Repositories {
		tok.Repositories = append(tok.Repositories, r.Name)
	}
	return tok, nil
}

// githubError reads a failed answer: GitHub's message, classified by status.
func githubError(status int, contentType string, body []byte) error {
	if _, err := parseResponse(status, contentType, body); err != nil {
		return err
	}
	return &Error{Class: classOf(status), Status: status, Description: "GitHub refused the request"}
}

// FindInstallation returns the id of the app's installation on the
// endpoint's owner: an organization's, else a user's.
func (c *Client) FindInstallation(ctx context.Context, e *Endpoint) (string, error) {
	owner, r := url.PathEscape(e.Installation.Owner), e.Redactor()
	for _, kind := range []string{"orgs", "users"} {
		req, err := e.githubRequest(ctx, http.MethodGet, e.Installation.api()+"/"+kind+"/"+owner+"/installation", nil, "")
		if err != nil {
			return "", r.refusal(err)
		}
		status, contentType, retry, body, err := c.roundTrip(req, r)
		switch {
		case err != nil:
			return "", err
		case status == http.StatusNotFound && kind == "orgs":
			continue // not an organization: perhaps a user
		case status != http.StatusOK:
			return "", cleaned(githubError(status, contentType, body), r, retry)
		}
		var found struct {
			ID int64 `json:"id"`
		}
		if err := json.Unmarshal(body, &found); err != nil || found.ID <= 0 {
			return "", &Error{Class: Refused, Status: status, Description: "GitHub's answer names no installation id"}
		}
		return strconv.FormatInt(found.ID, 10), nil
	}
	return "", &Error{Class: Refused, Status: http.StatusNotFound, Description: "the app is not installed on " + e.Installation.Owner}
}

// Revocable reports whether Revoke can end the endpoint's tokens early.
func (e *Endpoint) Revocable() bool { return e.row().revocable }

// Revoke ends accessToken before it expires (GitHub: DELETE
// {api}/installation/token with the token itself). It does nothing for a
// dialect without revocation.
func (c *Client) Revoke(ctx context.Context, e *Endpoint, accessToken string) error {
	if !e.Revocable() || accessToken == "" {
		return nil
	}
	r := e.Redactor(accessToken)
	req, err := e.githubRequest(ctx, http.MethodDelete, e.Installation.api()+"/installation/token", nil, accessToken)
	if err != nil {
		return r.refusal(err)
	}
	status, contentType, retry, body, err := c.roundTrip(req, r)
	switch {
	case err != nil:
		return err
	case status == http.StatusNoContent || status == http.StatusOK:
		return nil
	}
	return cleaned(githubError(status, contentType, body), r, retry)
}

// githubRequest is one REST call with GitHub's headers, authenticated by
// token, or by a fresh app JWT when token is "".
func (e *Endpoint) githubRequest(ctx context.Context, method, target string, body any, token string) (*http.Request, error) {
	var reader io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		reader = bytes.NewReader(b)
	}
	if token == "" {
		jwt, err := e.assertion(false)
		if err != nil {
			return nil, err
		}
		token = jwt
	}
	req, err := http.NewRequestWithContext(ctx, method, target, reader)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", githubMediaType)
	req.Header.Set("X-GitHub-Api-Version", githubAPIVersion)
	req.Header.Set("User-Agent", userAgent) // GitHub refuses requests without one
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}
