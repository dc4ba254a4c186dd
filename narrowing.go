package tokenbroker

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// Narrowed reads: a creds read (creds/<name>, self/<app>) may ask for less
// than the config's token, within the config's allowed_* bounds; a role
// (path_role.go) asks for a fixed narrowing. Each distinct narrowing is a
// variant of the name's token, cached apart (variants.go).

// narrowingFields are the read parameters of a narrowing. scope takes
// RFC 6749 §3.3's space-delimited list, or a comma-separated one: one
// string, the cheapest type for the framework to check on every read that
// sends it; resource is repeatable (RFC 8707 §2: a URI may hold commas, so
// it is never split).
var narrowingFields = map[string]*framework.FieldSchema{
	"scope": {Type: framework.TypeString, Query: true,
		Description: "Narrowed read: the scopes the token is limited to, space- or comma-separated (RFC 6749 §3.3); within the config's allowed_scopes."},
	"audience": {Type: framework.TypeCommaStringSlice, Query: true,
		Description: "Narrowed read: the audience the token is for; within the config's allowed_audiences."},
	"resource": {Type: framework.TypeStringSlice, Query: true,
		Description: "Narrowed read: a resource indicator (RFC 8707: an absolute URI without fragment), repeatable; within the config's allowed_resources."},
	"repositories": {Type: framework.TypeCommaStringSlice, Query: true,
		Description: "Narrowed read (github_app): repository names the token is limited to; within the config's repositories, when it has any."},
	"repository_ids": {Type: framework.TypeCommaIntSlice, Query: true,
		Description: "Narrowed read (github_app): repository ids the token is limited to; within the config's repository_ids, when it has any."},
	"permissions": {Type: framework.TypeKVPairs, Query: true,
		Description: "Narrowed read (github_app): permissions the token is limited to, as contents=read,issues=write; no higher than the config's permissions, when it has any."},
}

// narrowingParams are narrowingFields' names, checked without decoding.
var narrowingParams = []string{"scope", "audience", "resource", "repositories", "repository_ids", "permissions"}

// withNarrowingFields is fields with narrowingFields added.
func withNarrowingFields(fields map[string]*framework.FieldSchema) map[string]*framework.FieldSchema {
	return withFieldSchemas(fields, narrowingFields)
}

// variantOf is the variant a read asks for (nil: none). It decodes nothing
// unless a narrowing parameter was sent: the field decoder is most of a
// cached read's allocations, and a plain read stays as cheap as before. A
// narrowed read sent as before is found by its raw values in the backend's
// memo of them, without decoding, canonicalising or encoding its key again.
func (b *backend) variantOf(d *framework.FieldData) (*variantRequest, error) {
	sent := false
	for _, p := range narrowingParams {
		if _, ok := d.Raw[p]; ok {
			sent = true
			break
		}
	}
	if !sent {
		return nil, nil
	}
	var stack [256]byte
	raw, memo := rawNarrowing(stack[:0], d.Raw)
	if memo {
		if vr := b.narrowings.get(raw); vr != nil {
			return vr, nil
		}
	}
	n, err := narrowingField(d)
	if err != nil || n == nil {
		return nil, err
	}
	vr := newVariantRequest(*n, nil)
	if memo {
		b.narrowings.put(string(raw), vr)
	}
	return vr, nil
}

// rawNarrowing appends to buf the narrowing parameters of a request as sent,
// one encoding for one request; false when a value is of another type, or
// holds the bytes that separate values, and is not memoised.
func rawNarrowing(buf []byte, raw map[string]any) ([]byte, bool) {
	for i, p := range narrowingParams {
		v, sent := raw[p]
		if !sent {
			continue
		}
		buf = append(buf, byte('0'+i))
		switch v := v.(type) {
		case string:
			if strings.ContainsAny(v, "\x00\x01") {
				return buf, false
			}
			buf = append(append(buf, v...), 0)
		case []string:
			for _, item := range v {
				if strings.ContainsAny(item, "\x00\x01") {
					return buf, false
				}
				buf = append(append(buf, item...), 0)
			}
			buf = append(buf, 1)
		default:
			return buf, false
		}
	}
	return buf, true
}

// narrowingMemo maps narrowed reads' raw parameters (rawNarrowing) to their
// variant requests: what a read asks depends on its parameters alone, so a
// memo never goes stale. Bounded: full, it starts again.
type narrowingMemo struct {
	mu sync.RWMutex
	m  map[string]*variantRequest
}

// maxMemoNarrowings bounds the memo: distinct narrowed reads of every name.
const maxMemoNarrowings = 4096

func (c *narrowingMemo) get(raw []byte) *variantRequest {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[string(raw)] // no allocation: the compiler looks the bytes up as they are
}

func (c *narrowingMemo) put(raw string, vr *variantRequest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxMemoNarrowings {
		c.m = map[string]*variantRequest{}
	}
	c.m[raw] = vr
}

// narrowingField is the narrowing a read asks for, in its canonical form, or
// nil when it asks for none.
func narrowingField(d *framework.FieldData) (*provider.Narrowing, error) {
	var n provider.Narrowing
	scope, _, err := field[string](d, "scope")
	if err != nil {
		return nil, err
	}
	if n.Scopes, err = provider.ParseScopes(scope); err != nil {
		return nil, err
	}
	for _, list := range []struct {
		key string
		to  *[]string
	}{{"audience", &n.Audiences}, {"resource", &n.Resources}, {"repositories", &n.Repositories}} {
		v, _, err := field[[]string](d, list.key)
		if err != nil {
			return nil, err
		}
		*list.to = cleanList(v)
	}
	ids, _, err := field[[]int](d, "repository_ids")
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		n.RepositoryIDs = append(n.RepositoryIDs, int64(id))
	}
	if n.Permissions, _, err = field[map[string]string](d, "permissions"); err != nil {
		return nil, err
	}
	c, err := n.Canonical()
	if err != nil || c.IsZero() {
		return nil, err
	}
	return &c, nil
}

// narrowingBounds are what narrowings of c may ask for: its allowed_*
// lists; for a GitHub App, its own repositories and permissions when it
// has any (a narrowing never widens them), else what the installation has.
func (c *providerConfig) narrowingBounds() provider.Bounds {
	return provider.Bounds{
		Scopes: c.AllowedScopes, Audiences: c.AllowedAudiences, Resources: c.AllowedResources,
		Repositories: c.Repositories, RepositoryIDs: c.RepositoryIDs, Permissions: c.Permissions,
		AnyRepository: len(c.Repositories)+len(c.RepositoryIDs) == 0, AnyPermission: len(c.Permissions) == 0,
	}
}

// checkNarrowing refuses, with a 400 naming the value and the field that
// bounds it, a narrowing of name's config that its bounds do not allow.
func (c *providerConfig) checkNarrowing(name string, n provider.Narrowing) error {
	err := c.narrowingBounds().Check(n)
	var outside *provider.OutsideBoundsError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &outside):
		bound := map[string]string{"scope": "allowed_scopes", "audience": "allowed_audiences", "resource": "allowed_resources",
			"repository": "repositories", "repository id": "repository_ids", "permission": "permissions"}[outside.Kind]
		owner := "config's"
		if c.App != "" {
			owner = fmt.Sprintf("app %q's", c.App) // a connection's bounds are its app's
		}
		return logical.CodedError(http.StatusBadRequest, fmt.Sprintf("narrowed token of %q refused: %s (the %s %s)", name, err, owner, bound))
	}
	return logical.CodedError(http.StatusBadRequest, fmt.Sprintf("narrowed token of %q refused: %s", name, err))
}

// narrowingRefused turns the provider's refusal of a narrowing
// (invalid_scope, invalid_target, GitHub's 422) into a 400 for the read
// that asked: the chain is not lost (chain.go's spent), the request was.
func narrowingRefused(err error) error {
	var pe *provider.Error
	if errors.As(err, &pe) && pe.NarrowingRefused {
		return logical.CodedError(http.StatusBadRequest, "the provider refused the narrowing asked: "+err.Error())
	}
	return err
}
