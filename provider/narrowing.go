package provider

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"
)

// Narrowing asks a token request for less than the endpoint's configured
// token: fewer scopes, one audience or resource among several, a few
// repositories or lower permissions. A field left empty narrows nothing: the
// request carries what the endpoint configures for it.
//
// Which grant carries which field (TokenRequest):
//   - client credentials (RFC 6749 §4.4.2): scope, one audience, resources;
//   - refresh (RFC 6749 §6, RFC 8707 §2.2): scope and resources, never more
//     than the refresh token's own scope;
//   - token exchange (RFC 8693 §2.1): scope, audiences and resources;
//   - a GitHub App's installation token: repositories, repository ids and
//     permissions.
//
// A field a grant cannot carry makes the request fail before it is sent,
// rather than be silently dropped.
type Narrowing struct {
	// Scopes replace the configured scopes (RFC 6749 §3.3).
	Scopes []string
	// Audiences: the logical names of the target services (RFC 8693 §2.1;
	// Auth0-style client credentials take one).
	Audiences []string
	// Resources: absolute URIs of the target services, without fragment
	// (RFC 8707 §2).
	Resources []string
	// Repositories (names) and RepositoryIDs of a GitHub App installation,
	// and Permissions ({"contents": "read"}) the token is limited to.
	Repositories  []string
	RepositoryIDs []int64
	Permissions   map[string]string
}

// MaxGitHubRepositories is how many repositories an installation token may
// name, ids and names together: GitHub's "Create an installation access
// token for an app" takes "up to 500".
const MaxGitHubRepositories = 500

// githubPermissionLevels are the access levels a GitHub App permission may
// ask for, lowest first (GitHub REST "Create an installation access token
// for an app": read, write, admin).
var githubPermissionLevels = []string{"read", "write", "admin"}

// IsZero reports whether n narrows nothing.
func (n Narrowing) IsZero() bool {
	return len(n.Scopes) == 0 && len(n.Audiences) == 0 && len(n.Resources) == 0 &&
		len(n.Repositories) == 0 && len(n.RepositoryIDs) == 0 && len(n.Permissions) == 0
}

// Canonical returns n in its one form: scopes, audiences, resources,
// repositories and repository ids sorted without duplicates, resources
// normalised (NormalizeResource). It refuses what no provider takes: a scope
// outside RFC 6749's characters, an empty audience or repository name, a
// resource that is not an absolute URI or has a fragment, a repository id
// below 1, a permission level other than read, write or admin, more than
// MaxGitHubRepositories repositories. The error names the value.
func (n Narrowing) Canonical() (Narrowing, error) {
	var out Narrowing
	for _, s := range n.Scopes {
		if err := checkScope(s); err != nil {
			return Narrowing{}, err
		}
	}
	out.Scopes = sortedSet(n.Scopes)
	for _, a := range n.Audiences {
		if strings.TrimSpace(a) == "" || !utf8.ValidString(a) || strings.ContainsFunc(a, isControl) {
			return Narrowing{}, fmt.Errorf("audience %q: must be a non-empty printable string", a)
		}
	}
	out.Audiences = sortedSet(n.Audiences)
	resources, err := ParseResources(n.Resources)
	if err != nil {
		return Narrowing{}, err
	}
	out.Resources = sortedSet(resources)
	for _, r := range n.Repositories {
		if strings.TrimSpace(r) == "" || strings.ContainsAny(r, "/ ") || strings.ContainsFunc(r, isControl) {
			return Narrowing{}, fmt.Errorf("repository %q: must be a repository's name, without its owner", r)
		}
	}
	out.Repositories = sortedSet(n.Repositories)
	for _, id := range n.RepositoryIDs {
		if id < 1 {
			return Narrowing{}, fmt.Errorf("repository id %d: must be at least 1", id)
		}
	}
	out.RepositoryIDs = sortedSet(n.RepositoryIDs)
	if count := len(out.Repositories) + len(out.RepositoryIDs); count > MaxGitHubRepositories {
		return Narrowing{}, fmt.Errorf("%d repositories: GitHub takes at most %d in one installation token", count, MaxGitHubRepositories)
	}
	if len(n.Permissions) > 0 {
		out.Permissions = make(map[string]string, len(n.Permissions))
		for k, v := range n.Permissions {
			if k == "" || strings.ContainsFunc(k, isControl) {
				return Narrowing{}, fmt.Errorf("permission %q: must be a permission's name", k)
			}
			if !slices.Contains(githubPermissionLevels, v) {
				return Narrowing{}, fmt.Errorf("permission %s:%q: the level must be read, write or admin", k, v)
			}
			out.Permissions[k] = v
		}
	}
	return out, nil
}

// Key is n's canonical form as a string, the same for every Narrowing that
// asks for the same thing, and different for any two that do not: a cache
// key. It is the JSON of the canonical form ("{}" for none). Key panics on
// a Narrowing that Canonical refuses: check it first.
func (n Narrowing) Key() string {
	c, err := n.Canonical()
	if err != nil {
		panic("provider: Key of an invalid Narrowing: " + err.Error())
	}
	b, err := json.Marshal(struct {
		Scopes        []string          `json:"scope,omitempty"`
		Audiences     []string          `json:"audience,omitempty"`
		Resources     []string          `json:"resource,omitempty"`
		Repositories  []string          `json:"repositories,omitempty"`
		RepositoryIDs []int64           `json:"repository_ids,omitempty"`
		Permissions   map[string]string `json:"permissions,omitempty"` // encoding/json sorts map keys
	}{c.Scopes, c.Audiences, c.Resources, c.Repositories, c.RepositoryIDs, c.Permissions})
	if err != nil {
		panic("provider: encoding a Narrowing: " + err.Error())
	}
	return string(b)
}

// ParseScopes reads a list of scopes given as one string, space-delimited
// (RFC 6749 §3.3) or comma-separated, or both; empty items are dropped.
// A scope-token outside RFC 6749's characters is refused, named.
func ParseScopes(s string) ([]string, error) {
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' })
	for _, f := range fields {
		if err := checkScope(f); err != nil {
			return nil, err
		}
	}
	if len(fields) == 0 {
		return nil, nil
	}
	return fields, nil
}

// checkScope refuses a scope-token that is not 1*NQCHAR (RFC 6749 §3.3,
// Appendix A.4): printable ASCII without space, '"' or '\'.
func checkScope(s string) error {
	if s == "" {
		return fmt.Errorf("an empty scope")
	}
	if i := strings.IndexFunc(s, func(r rune) bool { return r >= utf8.RuneSelf || !scopeChars(byte(r)) }); i >= 0 {
		return fmt.Errorf("scope %q: %s at byte %d, where RFC 6749 §3.3 allows printable ASCII without spaces, quotes or backslashes",
			strings.ToValidUTF8(s, "\uFFFD"), describeByte(s[i]), i)
	}
	return nil
}

// ParseResources normalises each resource indicator (NormalizeResource),
// keeping their order; the first that is not usable fails, named.
func ParseResources(values []string) ([]string, error) {
	var out []string
	for _, v := range values {
		r, err := NormalizeResource(v)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// NormalizeResource checks a resource indicator and returns its normal
// form. RFC 8707 §2: it MUST be an absolute URI (RFC 3986 §4.3) and MUST NOT
// include a fragment; it may have a query. Normalised as RFC 3986 §6.2.2.1
// and §6.2.3 allow: scheme and host lower-cased, a scheme's default port
// (http 80, https 443) dropped. The path is kept as it is: servers compare
// resource indicators as strings, and a registered "https://api.example.com"
// is not sent as ".../". Credentials in the URI are refused: a resource
// names a service, it carries no secret.
func NormalizeResource(raw string) (string, error) {
	if strings.ContainsFunc(raw, func(r rune) bool { return r <= ' ' || r == 0x7f || r >= utf8.RuneSelf }) {
		return "", fmt.Errorf("resource %q: must be a URI without spaces, control or non-ASCII characters (RFC 3986)", strings.ToValidUTF8(raw, "\uFFFD"))
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "", fmt.Errorf("resource %q: not a URI: %v", raw, unwrapURLError(err))
	case !u.IsAbs():
		return "", fmt.Errorf("resource %q: must be an absolute URI, with a scheme (RFC 8707 §2)", raw)
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return "", fmt.Errorf("resource %q: must not include a fragment (RFC 8707 §2)", raw)
	case u.User != nil:
		return "", fmt.Errorf("resource %q: credentials in a resource URI are not allowed", raw)
	case u.Opaque == "" && u.Host == "" && (u.Scheme == "http" || u.Scheme == "https"):
		return "", fmt.Errorf("resource %q: an %s URI needs a host", raw, u.Scheme)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	if u.Host != "" {
		host, port := strings.ToLower(u.Hostname()), u.Port()
		if (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
			port = ""
		}
		if strings.Contains(host, ":") {
			host = "[" + host + "]" // an IPv6 literal
		}
		u.Host = host
		if port != "" {
			u.Host += ":" + port
		}
	}
	return u.String(), nil
}

// unwrapURLError drops url.Error's "parse <value>:" prefix, since messages
// name the value themselves.
func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// Bounds are what narrowings may ask for: the allowed scopes, audiences,
// resources (normalised for comparison), repositories and permission levels.
// An empty list allows nothing of its kind, so an unconfigured bound never
// lets a request widen what the endpoint asks; AnyRepository and
// AnyPermission leave those to the provider (GitHub refuses what the
// installation does not have).
type Bounds struct {
	Scopes, Audiences, Resources []string
	Repositories                 []string
	RepositoryIDs                []int64
	Permissions                  map[string]string
	AnyRepository, AnyPermission bool
}

// OutsideBoundsError is a narrowing asking for a value its bounds do not
// allow. Kind is "scope", "audience", "resource", "repository", "repository
// id" or "permission".
type OutsideBoundsError struct {
	Kind, Value string
}

func (e *OutsideBoundsError) Error() string {
	kinds := e.Kind + "s"
	if k, ok := strings.CutSuffix(e.Kind, "y"); ok {
		kinds = k + "ies" // repository: repositories
	}
	return fmt.Sprintf("%s %q is not among the allowed %s", e.Kind, e.Value, kinds)
}

// Check returns nil when every value n asks for is within b, else an
// *OutsideBoundsError naming the first that is not (in n's canonical
// order), or Canonical's error for a narrowing that is not usable.
// Repositories named by id are within b when b lists the id; a name and an
// id are not matched with each other.
func (b Bounds) Check(n Narrowing) error {
	c, err := n.Canonical()
	if err != nil {
		return err
	}
	allowedResources, err := ParseResources(b.Resources)
	if err != nil {
		return fmt.Errorf("allowed resources: %w", err)
	}
	for _, list := range []struct {
		kind           string
		asked, allowed []string
	}{
		{"scope", c.Scopes, b.Scopes},
		{"audience", c.Audiences, b.Audiences},
		{"resource", c.Resources, allowedResources},
	} {
		for _, v := range list.asked {
			if !slices.Contains(list.allowed, v) {
				return &OutsideBoundsError{list.kind, v}
			}
		}
	}
	if !b.AnyRepository {
		for _, r := range c.Repositories {
			if !slices.ContainsFunc(b.Repositories, func(a string) bool { return strings.EqualFold(a, r) }) { // GitHub's names ignore case
				return &OutsideBoundsError{"repository", r}
			}
		}
		for _, id := range c.RepositoryIDs {
			if !slices.Contains(b.RepositoryIDs, id) {
				return &OutsideBoundsError{"repository id", fmt.Sprint(id)}
			}
		}
	}
	if !b.AnyPermission {
		keys := make([]string, 0, len(c.Permissions))
		for k := range c.Permissions {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if level(c.Permissions[k]) > level(b.Permissions[k]) {
				return &OutsideBoundsError{"permission", k + ":" + c.Permissions[k]}
			}
		}
	}
	return nil
}

// level ranks a GitHub permission level (0: none).
func level(v string) int { return slices.Index(githubPermissionLevels, v) + 1 }

// sortedSet returns list sorted without duplicates (nil when empty).
func sortedSet[T string | int64](list []T) []T {
	if len(list) == 0 {
		return nil
	}
	out := slices.Clone(list)
	slices.Sort(out)
	return slices.Compact(out)
}

func isControl(r rune) bool { return r < ' ' || r == 0x7f || (0x80 <= r && r < 0xa0) }

// identityScopes grant no access to an API, only who the user is and a
// refresh token (OpenID Connect Core §5.4, §11; fosite's "offline"): a
// provider may add them to a narrowed token without widening it.
var identityScopes = map[string]bool{"openid": true, "profile": true, "email": true, "offline_access": true, "offline": true}

// ScopesBeyond are the scopes of granted (the scope a narrowed token was
// issued with) that n did not ask for. RFC 6749 §3.3 lets a server ignore
// the scope asked if its answer says so; a token issued wider than the
// narrowing asked is not a narrowed token. Not counted: identity scopes,
// a scope n asked for by its full URI and granted by its last segment
// (Microsoft names Graph permissions "User.Read"), and anything when n asks
// a resource's ".default" (Microsoft's identity platform grants every
// permission consented for the resource, by names it does not list).
func (n Narrowing) ScopesBeyond(granted []string) []string {
	if len(n.Scopes) == 0 || slices.ContainsFunc(n.Scopes, func(s string) bool { return strings.HasSuffix(s, "/.default") }) {
		return nil
	}
	var beyond []string
	for _, g := range granted {
		asked := slices.ContainsFunc(n.Scopes, func(s string) bool { return s == g || strings.HasSuffix(s, "/"+g) })
		if !asked && !identityScopes[g] {
			beyond = append(beyond, g)
		}
	}
	return beyond
}
