package provider

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestNormalizeResource(t *testing.T) {
	cases := []struct {
		name, in, want, wantErr string
	}{
		{"https kept", "https://api.example.com/v1", "https://api.example.com/v1", ""},
		{"scheme and host lower-cased", "HTTPS://API.Example.COM/V1", "https://api.example.com/V1", ""},
		{"default https port dropped", "https://api.example.com:443/v1", "https://api.example.com/v1", ""},
		{"default http port dropped", "http://api.example.com:80", "http://api.example.com", ""},
		{"other port kept", "https://api.example.com:8443/", "https://api.example.com:8443/", ""},
		{"http port 443 kept", "http://api.example.com:443", "http://api.example.com:443", ""},
		{"query kept (RFC 8707 §2 allows it)", "https://api.example.com/?tenant=A", "https://api.example.com/?tenant=A", ""},
		{"empty path not turned into /", "https://api.example.com", "https://api.example.com", ""},
		{"IPv6 literal", "https://[::1]:443/x", "https://[::1]/x", ""},
		{"URN", "urn:Example:resource", "urn:Example:resource", ""},
		{"fragment refused", "https://api.example.com/#frag", "", `resource "https://api.example.com/#frag": must not include a fragment`},
		{"empty fragment refused", "https://api.example.com/#", "", "must not include a fragment"},
		{"relative refused", "/api/v1", "", `resource "/api/v1": must be an absolute URI`},
		{"bare host refused", "api.example.com", "", "must be an absolute URI"},
		{"credentials refused", "https://user:pw@api.example.com/", "", "credentials in a resource URI"},
		{"space refused", "https://api.example.com/a b", "", "without spaces"},
		{"https without host refused", "https:///path", "", "needs a host"},
		{"empty refused", "", "", "must be an absolute URI"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizeResource(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("NormalizeResource(%q): got %q, %v; want an error containing %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("NormalizeResource(%q): got %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestParseScopes(t *testing.T) {
	cases := []struct {
		name, in string
		want     []string
		wantErr  string
	}{
		{"space-delimited (RFC 6749 §3.3)", "read write", []string{"read", "write"}, ""},
		{"comma-separated", "read,write", []string{"read", "write"}, ""},
		{"both, with empty items", " read, ,write  admin,", []string{"read", "write", "admin"}, ""},
		{"a URI scope", "https://graph.microsoft.com/.default offline_access", []string{"https://graph.microsoft.com/.default", "offline_access"}, ""},
		{"empty", "", nil, ""},
		{"quote refused", `read "write"`, nil, `scope "\"write\"": the character '"' at byte 0`},
		{"backslash refused", `a\b`, nil, "at byte 1"},
		{"non-ASCII refused", "lesen,schreibé", nil, `scope "schreibé": a non-ASCII character`},
		{"tab refused", "a\tb", nil, "a control character (0x09)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseScopes(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseScopes(%q): got %q, %v; want an error containing %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ParseScopes(%q): got %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestParseResourcesNamesTheFirstBadValue(t *testing.T) {
	got, err := ParseResources([]string{"HTTPS://a.example:443/x", "https://b.example"})
	if want := []string{"https://a.example/x", "https://b.example"}; err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseResources: got %q, %v; want %q", got, err, want)
	}
	_, err = ParseResources([]string{"https://a.example", "b#c", "d"})
	if err == nil || !strings.Contains(err.Error(), `resource "b#c"`) {
		t.Fatalf("ParseResources with a bad value: got %v, want an error naming b#c", err)
	}
}

func TestNarrowingCanonicalAndKey(t *testing.T) {
	a := Narrowing{
		Scopes:        []string{"write", "read", "write"},
		Audiences:     []string{"svc-b", "svc-a", "svc-b"},
		Resources:     []string{"https://B.example:443/", "https://a.example/"},
		Repositories:  []string{"zeta", "alpha"},
		RepositoryIDs: []int64{9, 3, 9},
		Permissions:   map[string]string{"issues": "read", "contents": "write"},
	}
	b := Narrowing{
		Scopes:        []string{"read", "write"},
		Audiences:     []string{"svc-a", "svc-b"},
		Resources:     []string{"https://a.example/", "https://b.example/"},
		Repositories:  []string{"alpha", "zeta", "alpha"},
		RepositoryIDs: []int64{3, 9},
		Permissions:   map[string]string{"contents": "write", "issues": "read"},
	}
	c, err := a.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	want := Narrowing{
		Scopes: []string{"read", "write"}, Audiences: []string{"svc-a", "svc-b"},
		Resources:    []string{"https://a.example/", "https://b.example/"},
		Repositories: []string{"alpha", "zeta"}, RepositoryIDs: []int64{3, 9},
		Permissions: map[string]string{"contents": "write", "issues": "read"},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Canonical:\n got %+v\nwant %+v", c, want)
	}
	if a.Key() != b.Key() {
		t.Errorf("Key of the same narrowing in two orders: got %s and %s, want equal", a.Key(), b.Key())
	}
	wantKey := `{"scope":["read","write"],"audience":["svc-a","svc-b"],"resource":["https://a.example/","https://b.example/"],` +
		`"repositories":["alpha","zeta"],"repository_ids":[3,9],"permissions":{"contents":"write","issues":"read"}}`
	if got := a.Key(); got != wantKey {
		t.Errorf("Key:\n got %s\nwant %s", got, wantKey)
	}
	if got := (Narrowing{}).Key(); got != "{}" {
		t.Errorf("Key of no narrowing: got %s, want {}", got)
	}

	// Keys that would collide under a naive join stay apart.
	distinct := []Narrowing{
		{Scopes: []string{"a", "b"}},
		{Scopes: []string{"ab"}},
		{Audiences: []string{"a", "b"}},
		{Audiences: []string{"a b"}},
		{Scopes: []string{"a"}, Audiences: []string{"b"}},
		{Scopes: []string{"b"}, Audiences: []string{"a"}},
		{Repositories: []string{"1"}},
		{RepositoryIDs: []int64{1}},
	}
	seen := map[string]int{}
	for i, n := range distinct {
		k := n.Key()
		if j, dup := seen[k]; dup {
			t.Errorf("Key: narrowings %d (%+v) and %d (%+v) share %s, want distinct keys", j, distinct[j], i, n, k)
		}
		seen[k] = i
	}
}

func TestNarrowingCanonicalRefuses(t *testing.T) {
	many := make([]int64, MaxGitHubRepositories+1)
	for i := range many {
		many[i] = int64(i + 1)
	}
	cases := []struct {
		name    string
		n       Narrowing
		wantErr string
	}{
		{"scope with a space", Narrowing{Scopes: []string{"read write"}}, `scope "read write": a space`},
		{"empty scope", Narrowing{Scopes: []string{""}}, "an empty scope"},
		{"empty audience", Narrowing{Audiences: []string{" "}}, `audience " "`},
		{"resource with fragment", Narrowing{Resources: []string{"https://a.example/#x"}}, `resource "https://a.example/#x"`},
		{"repository with owner", Narrowing{Repositories: []string{"octo/repo"}}, `repository "octo/repo": must be a repository's name`},
		{"repository id 0", Narrowing{RepositoryIDs: []int64{0}}, "repository id 0"},
		{"too many repositories", Narrowing{RepositoryIDs: many}, "501 repositories: GitHub takes at most 500"},
		{"unknown permission level", Narrowing{Permissions: map[string]string{"contents": "none"}}, `permission contents:"none": the level must be read, write or admin`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.n.Canonical()
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Canonical: got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestBoundsCheck(t *testing.T) {
	b := Bounds{
		Scopes:       []string{"read", "write"},
		Audiences:    []string{"https://api.example"},
		Resources:    []string{"HTTPS://res.example:443/a"},
		Repositories: []string{"Alpha", "beta"}, RepositoryIDs: []int64{7},
		Permissions: map[string]string{"contents": "write", "issues": "read"},
	}
	cases := []struct {
		name     string
		b        Bounds
		n        Narrowing
		kind, v  string // the *OutsideBoundsError wanted; "" for none
		otherErr string
	}{
		{"nothing asked", b, Narrowing{}, "", "", ""},
		{"a subset", b, Narrowing{Scopes: []string{"read"}, Audiences: []string{"https://api.example"},
			Resources: []string{"https://res.example/a"}, Repositories: []string{"alpha"}, RepositoryIDs: []int64{7},
			Permissions: map[string]string{"contents": "read"}}, "", "", ""},
		{"the first scope outside, in canonical order", b, Narrowing{Scopes: []string{"zzz", "admin", "read"}}, "scope", "admin", ""},
		{"an audience outside", b, Narrowing{Audiences: []string{"https://other.example"}}, "audience", "https://other.example", ""},
		{"a resource outside", b, Narrowing{Resources: []string{"https://res.example/b"}}, "resource", "https://res.example/b", ""},
		{"a repository outside", b, Narrowing{Repositories: []string{"gamma"}}, "repository", "gamma", ""},
		{"a repository id outside", b, Narrowing{RepositoryIDs: []int64{8}}, "repository id", "8", ""},
		{"a permission higher than allowed", b, Narrowing{Permissions: map[string]string{"issues": "write"}}, "permission", "issues:write", ""},
		{"a permission not allowed at all", b, Narrowing{Permissions: map[string]string{"actions": "read"}}, "permission", "actions:read", ""},
		{"no allowed scopes allow none", Bounds{}, Narrowing{Scopes: []string{"read"}}, "scope", "read", ""},
		{"any repository", Bounds{AnyRepository: true}, Narrowing{Repositories: []string{"x"}, RepositoryIDs: []int64{1}}, "", "", ""},
		{"any permission", Bounds{AnyPermission: true}, Narrowing{Permissions: map[string]string{"x": "admin"}}, "", "", ""},
		{"an unusable narrowing", b, Narrowing{Resources: []string{"rel"}}, "", "", `resource "rel"`},
		{"unusable bounds", Bounds{Resources: []string{"a#b"}}, Narrowing{Resources: []string{"https://x"}}, "", "", `allowed resources: resource "a#b"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.b.Check(tc.n)
			var outside *OutsideBoundsError
			switch {
			case tc.otherErr != "":
				if err == nil || errors.As(err, &outside) || !strings.Contains(err.Error(), tc.otherErr) {
					t.Fatalf("Check: got %v, want an error containing %q", err, tc.otherErr)
				}
			case tc.kind == "":
				if err != nil {
					t.Fatalf("Check: got %v, want nil", err)
				}
			case !errors.As(err, &outside) || outside.Kind != tc.kind || outside.Value != tc.v:
				t.Fatalf("Check: got %v, want an OutsideBoundsError for %s %q", err, tc.kind, tc.v)
			}
		})
	}
	if got, want := (&OutsideBoundsError{"repository", "web"}).Error(), `repository "web" is not among the allowed repositories`; got != want {
		t.Errorf("Error: got %q, want %q", got, want)
	}
	if got, want := (&OutsideBoundsError{"scope", "admin"}).Error(), `scope "admin" is not among the allowed scopes`; got != want {
		t.Errorf("Error: got %q, want %q", got, want)
	}
}

func TestScopesBeyond(t *testing.T) {
	cases := []struct {
		name           string
		asked, granted []string
		want           []string
	}{
		{"what was asked", []string{"read"}, []string{"read"}, nil},
		{"less than asked", []string{"read", "write"}, []string{"read"}, nil},
		{"the whole grant, the narrowing ignored", []string{"read"}, []string{"read", "write", "admin"}, []string{"write", "admin"}},
		{"identity scopes added", []string{"read"}, []string{"openid", "profile", "email", "offline_access", "offline", "read"}, nil},
		{"a Graph permission by its short name", []string{"https://graph.microsoft.com/User.Read"}, []string{"User.Read", "openid"}, nil},
		{"another Graph permission", []string{"https://graph.microsoft.com/User.Read"}, []string{"User.Read", "Mail.Send"}, []string{"Mail.Send"}},
		{"a resource's .default", []string{"https://graph.microsoft.com/.default"}, []string{"User.Read", "Mail.Send"}, nil},
		{"no scope asked: nothing to exceed", nil, []string{"read", "write"}, nil},
		{"a suffix is not a segment", []string{"api:read"}, []string{"read"}, []string{"read"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Narrowing{Scopes: tc.asked}.ScopesBeyond(tc.granted)
			if !slices.Equal(got, tc.want) {
				t.Errorf("ScopesBeyond(asked %v, granted %v) = %v, want %v", tc.asked, tc.granted, got, tc.want)
			}
		})
	}
}
