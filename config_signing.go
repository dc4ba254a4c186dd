package tokenbroker

import (
	"fmt"
	"slices"
	"strconv"
	"time"

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
