package tokenbroker

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// signingConfig is the part of a config that signs (RFC 7523): the base
// grant chosen, what its assertions claim, and a GitHub App's installation.
// Its keys are stored apart (key/<name>, key_storage.go) and loaded with it.
type signingConfig struct {
	Grant             provider.Grant    `json:"grant,omitempty"`
	SigningAlg        string            `json:"signing_alg,omitempty"`
	AssertionIssuer   string            `json:"assertion_issuer,omitempty"`
	AssertionSubject  string            `json:"assertion_subject,omitempty"`
	AssertionAudience string            `json:"assertion_audience,omitempty"`
	AssertionTTL      time.Duration     `json:"assertion_ttl,omitempty"`
	AssertionClaims   map[string]any    `json:"assertion_claims,omitempty"`
	AppID             string            `json:"app_id,omitempty"`
	InstallationID    string            `json:"installation_id,omitempty"`
	InstallationOwner string            `json:"installation_owner,omitempty"`
	APIURL            string            `json:"api_url,omitempty"`
	Repositories      []string          `json:"repositories,omitempty"`
	RepositoryIDs     []int64           `json:"repository_ids,omitempty"`
	Permissions       map[string]string `json:"permissions,omitempty"`

	keys *keyRing // loaded with the config (loadConfig)
}

// signingFields are config/<name>'s fields of signed credentials (merged
// into configFields). Keys are write-only; key/<name> shows their public part.
var signingFields = map[string]*framework.FieldSchema{
	"grant": {Type: framework.TypeString,
		Description: "The base grant, where the provider offers a choice: client_credentials or jwt_bearer (RFC 7523 §2.1). Default: the provider's (google: jwt_bearer once a service account key is held)."},
	"private_key": {Type: framework.TypeString, DisplayAttrs: &framework.DisplayAttributes{Sensitive: true},
		Description: "PEM private key that signs assertions: PKCS#1 or PKCS#8 RSA, SEC1 or PKCS#8 EC P-256. Write-only; replaces the current key (key/<name>/rotate replaces it without downtime)."},
	"generate_key": {Type: framework.TypeString, AllowedValues: allowedValues(generatedKeyTypes),
		Description: "Make the signing key inside the plugin (it never leaves it): rsa-2048, rsa-3072, rsa-4096 or ec-p256. Exclusive with private_key; writing the same type again keeps the key. Read the public key at key/<name>."},
	"service_account_json": {Type: framework.TypeString, DisplayAttrs: &framework.DisplayAttributes{Sensitive: true},
		Description: "A Google service account key file (JSON): its private_key signs (kid private_key_id), client_email is the issuer, token_uri the audience and token URL. Write-only."},
	"certificate": {Type: framework.TypeString,
		Description: "PEM X.509 certificate of the signing key: adds the x5t and x5t#S256 headers (required by microsoft; made self-signed for a generated key)."},
	"key_id": {Type: framework.TypeString, Description: "The kid header of the signing key. Default: its RFC 7638 JWK thumbprint."},
	"signing_alg": {Type: framework.TypeString, AllowedValues: []any{provider.RS256, provider.PS256, provider.ES256},
		Description: "Signature algorithm: RS256 (RSA default; microsoft: PS256), PS256, or ES256 (EC default)."},
	"assertion_issuer":   {Type: framework.TypeString, Description: "iss of the grant's assertions. Default: client_id (github_app: app_id)."},
	"assertion_subject":  {Type: framework.TypeString, Description: "sub of the grant's assertions. Default: client_id; salesforce_jwt: the user (required); google: the user to act as (domain-wide delegation)."},
	"assertion_audience": {Type: framework.TypeString, Description: "aud of every assertion. Default: the token URL (salesforce_jwt: https://login.salesforce.com or https://test.salesforce.com)."},
	"assertion_ttl": {Type: framework.TypeDurationSecond, Default: int(provider.DefaultAssertionTTL.Seconds()),
		Description: "exp − iat of each assertion (30s–1h; salesforce_jwt at most 3m, github_app 10m). iat is 30 s in the past."},
	"assertion_claims":   {Type: framework.TypeMap, Description: "Extra claims of each assertion (JSON map); may not set iss, sub, aud, iat, exp, nbf or jti."},
	"app_id":             {Type: framework.TypeString, Description: "github_app: the GitHub App's id (the app JWT's iss)."},
	"installation_id":    {Type: framework.TypeString, Description: "github_app: the installation whose tokens to mint."},
	"installation_owner": {Type: framework.TypeString, Description: "github_app: an organization or user whose installation is looked up once (instead of installation_id) and kept."},
	"api_url":            {Type: framework.TypeString, Description: "github_app: the REST API, https://api.github.com (default) or GitHub Enterprise Server's https://HOST/api/v3."},
	"repositories":       {Type: framework.TypeCommaStringSlice, Description: "github_app: repository names the token is limited to."},
	"repository_ids":     {Type: framework.TypeCommaIntSlice, Description: "github_app: repository ids the token is limited to."},
	"permissions":        {Type: framework.TypeKVPairs, Description: "github_app: permissions the token is limited to, e.g. contents=read,issues=write."},
}

func init() {
	for k, v := range signingFields {
		configFields[k] = v
	}
}

// applySigning sets the signing fields present in d, after the endpoints
// are filled in (a service account's token_uri wins over the preset's). New
// keys are made here; they are stored with the config.
func (c *providerConfig) applySigning(d *framework.FieldData, name string, now time.Time) error {
	sc := &c.signingConfig
	owner := sc.InstallationOwner
	grant := string(sc.Grant)
	for key, dst := range map[string]*string{
		"grant": &grant, "signing_alg": &sc.SigningAlg, "assertion_issuer": &sc.AssertionIssuer,
		"assertion_subject": &sc.AssertionSubject, "assertion_audience": &sc.AssertionAudience, "app_id": &sc.AppID,
		"installation_id": &sc.InstallationID, "installation_owner": &sc.InstallationOwner, "api_url": &sc.APIURL,
	} {
		if v, ok, err := field[string](d, key); err != nil {
			return err
		} else if ok {
			*dst = strings.TrimSpace(v)
		}
	}
	sc.Grant = provider.Grant(grant)
	if _, sent := d.Raw["installation_id"]; !sent && sc.InstallationOwner != owner {
		sc.InstallationID = "" // a new owner's installation is looked up again
	}
	if v, ok, err := field[[]string](d, "repositories"); err != nil {
		return err
	} else if ok {
		sc.Repositories = cleanList(v)
	}
	if v, ok, err := field[[]int](d, "repository_ids"); err != nil {
		return err
	} else if ok {
		sc.RepositoryIDs = nil
		for _, id := range v {
			sc.RepositoryIDs = append(sc.RepositoryIDs, int64(id))
		}
	}
	if v, ok, err := field[map[string]string](d, "permissions"); err != nil {
		return err
	} else if ok {
		sc.Permissions = v
	}
	if v, ok, err := field[map[string]any](d, "assertion_claims"); err != nil {
		return err
	} else if ok {
		sc.AssertionClaims = v
	}
	if v, ok, err := field[int](d, "assertion_ttl"); err != nil {
		return err
	} else if ok {
		ttl := time.Duration(v) * time.Second
		if ttl < provider.MinAssertionTTL || ttl > provider.MaxAssertionTTL {
			return fmt.Errorf("assertion_ttl must be between %s and %s, got %s", provider.MinAssertionTTL, provider.MaxAssertionTTL, ttl)
		}
		sc.AssertionTTL = ttl
	}
	if _, sent := d.Raw["timeout"]; !sent {
		if _, changed := d.Raw["provider"]; changed {
			if t := c.endpoint().DefaultTimeout(); t > 0 {
				c.Timeout = t // GitHub's big answers
			}
		}
	}
	return c.applyKey(d, name, now)
}

// fillSigning puts the signing part of c into ep, signing with k (the
// current key when nil).
func (sc *signingConfig) fillSigning(ep *provider.Endpoint, k *signingKey) {
	ep.Grant = sc.Grant
	if k == nil {
		k = sc.keys.active()
	}
	if k != nil {
		alg := sc.SigningAlg
		if !slices.Contains(provider.KeyAlgorithms(k.signer.Public()), alg) {
			alg = "" // the dialect's default for a key of another type
		}
		ep.Key = k.wire(alg)
	}
	ep.Assertion = provider.Assertion{Issuer: sc.AssertionIssuer, Subject: sc.AssertionSubject,
		Audience: sc.AssertionAudience, TTL: sc.AssertionTTL, Claims: sc.AssertionClaims}
	if ep.Dialect == provider.GitHubApp {
		ep.Installation = &provider.Installation{AppID: sc.AppID, InstallationID: sc.InstallationID, Owner: sc.InstallationOwner,
			APIURL: sc.APIURL, Repositories: sc.Repositories, RepositoryIDs: sc.RepositoryIDs, Permissions: sc.Permissions}
	}
}

// endpointWith is the wire view of c signing with k instead of the current key.
func (c *providerConfig) endpointWith(k *signingKey) *provider.Endpoint {
	ep := c.endpoint()
	c.fillSigning(ep, k)
	return ep
}

// validateSigning checks the signing fields against the dialect and the key.
func (c *providerConfig) validateSigning() error {
	ep := c.endpoint()
	if c.Grant != "" && !slices.Contains(ep.BaseGrants(), c.Grant) {
		return fmt.Errorf("grant %s is not available for provider %s (want one of %v)", c.Grant, c.Provider, ep.BaseGrants())
	}
	if k := c.keys.active(); k != nil {
		fits := provider.KeyAlgorithms(k.signer.Public())
		if c.SigningAlg != "" && !slices.Contains(fits, c.SigningAlg) {
			return fmt.Errorf("signing_alg %s does not fit the signing key (a %s key signs %v)", c.SigningAlg, keyType(k.signer.Public()), fits)
		}
		if alg := ep.SigningAlgorithm(); !slices.Contains(ep.AcceptedAlgorithms(), alg) {
			return fmt.Errorf("provider %s does not accept %s signatures (it takes %v): use another signing_alg or key", c.Provider, alg, ep.AcceptedAlgorithms())
		}
		switch need := ep.MintNeeds(); need {
		case provider.NeedsCertificate, provider.NeedsAssertionIssuer, provider.NeedsAssertionSubject,
			provider.NeedsAppID, provider.NeedsInstallation, provider.NeedsScopes:
			// A config that signs means to mint: say so now, not at the first read.
			return fmt.Errorf("provider %s needs %s to mint with its signing key", c.Provider, credentialFields[need])
		}
	}
	if c.AssertionTTL > ep.MaxAssertionTTL() {
		return fmt.Errorf("assertion_ttl %s is longer than provider %s accepts (%s)", c.AssertionTTL, c.Provider, ep.MaxAssertionTTL())
	}
	for k := range c.AssertionClaims {
		if provider.ReservedClaim(k) {
			return fmt.Errorf("assertion_claims may not set %q: the assertion sets it", k)
		}
	}
	if c.APIURL != "" {
		if err := provider.CheckURL(c.APIURL); err != nil {
			return fmt.Errorf("api_url: %w", err)
		}
	}
	if _, err := strconv.ParseInt(c.InstallationID, 10, 64); c.InstallationID != "" && err != nil {
		return fmt.Errorf("installation_id %q is not a number", c.InstallationID)
	}
	return nil
}

// signingReadFields are what a config read (ep: its wire view) shows of the
// signing part: private_key_set always; the grant in force when a key is
// held, the dialect signs or a grant is chosen; the key's public facts and
// the assertion values in force when a key is held; a GitHub App's fields
// for github_app. Empty optional fields are left out.
func (c *providerConfig) signingReadFields(ep *provider.Endpoint) map[string]any {
	k := c.keys.active()
	data := map[string]any{"private_key_set": k != nil}
	if k != nil || c.Grant != "" || ep.Installation != nil || ep.BaseGrant() == provider.GrantJWTBearer {
		data["grant"] = string(ep.BaseGrant())
	}
	if k != nil {
		data["key_id"], data["key_type"] = k.kid, keyType(k.signer.Public())
		data["key_generated"], data["certificate_set"] = k.stored.Generated != "", k.cert != nil
		if next := c.keys.pending(); next != nil {
			data["next_key_id"] = next.kid
		}
		data["signing_alg"], data["assertion_ttl"] = ep.SigningAlgorithm(), seconds(ep.AssertionTTL())
		putSet(data, "assertion_issuer", ep.AssertionIssuer())
		putSet(data, "assertion_subject", ep.AssertionSubject())
		putSet(data, "assertion_audience", ep.AssertionAudience())
		putSet(data, "assertion_claims", c.AssertionClaims)
	}
	if ep.Installation != nil {
		data["api_url"] = cmp.Or(c.APIURL, provider.GitHubAPI)
		putSet(data, "app_id", c.AppID)
		putSet(data, "installation_id", c.InstallationID)
		putSet(data, "installation_owner", c.InstallationOwner)
		putSet(data, "repositories", c.Repositories)
		putSet(data, "repository_ids", c.RepositoryIDs)
		putSet(data, "permissions", c.Permissions)
	}
	return data
}

// sameSigner reports whether tokens minted under c are still those o would
// mint: the same grant, for the same subject, at the same installation.
func (sc *signingConfig) sameSigner(o *signingConfig) bool {
	return sc.Grant == o.Grant && sc.AssertionIssuer == o.AssertionIssuer && sc.AssertionSubject == o.AssertionSubject &&
		sc.AssertionAudience == o.AssertionAudience && sc.AppID == o.AppID && sc.InstallationID == o.InstallationID &&
		sc.InstallationOwner == o.InstallationOwner && sc.APIURL == o.APIURL
}

// sameSignedShape reports whether a token minted under c fits o's request.
func (sc *signingConfig) sameSignedShape(o *signingConfig) bool {
	return slices.Equal(sc.Repositories, o.Repositories) && slices.Equal(sc.RepositoryIDs, o.RepositoryIDs) &&
		fmt.Sprint(sc.Permissions) == fmt.Sprint(o.Permissions) && fmt.Sprint(sc.AssertionClaims) == fmt.Sprint(o.AssertionClaims)
}
