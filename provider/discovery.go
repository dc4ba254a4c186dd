package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Metadata is what an authorization server publishes about itself (RFC 8414
// §2; OpenID Connect Discovery 1.0 §3), as far as a client of it needs.
type Metadata struct {
	Issuer                      string `json:"issuer"`
	AuthorizationEndpoint       string `json:"authorization_endpoint"`
	TokenEndpoint               string `json:"token_endpoint"`
	DeviceAuthorizationEndpoint string `json:"device_authorization_endpoint"`
	// RevocationEndpoint: RFC 7009 token revocation (RFC 8414 §2);
	// UserinfoEndpoint: OpenID Connect Discovery 1.0 §3.
	RevocationEndpoint   string   `json:"revocation_endpoint"`
	UserinfoEndpoint     string   `json:"userinfo_endpoint"`
	CodeChallengeMethods []string `json:"code_challenge_methods_supported"`
	// ResponseModes: the response_mode values the server supports (RFC 8414
	// §2; absent means query and fragment).
	ResponseModes []string `json:"response_modes_supported"`
}

// MetadataURLs are where issuer's metadata may be published: OpenID Connect
// Discovery's /.well-known/openid-configuration appended to the issuer, then
// RFC 8414 §3's /.well-known/oauth-authorization-server inserted before the
// issuer's path.
func MetadataURLs(issuer string) ([]string, error) {
	u, err := url.Parse(issuer)
	if err != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("issuer %q must be a URL without query or fragment", issuer)
	}
	path := strings.TrimSuffix(u.Path, "/")
	oidc := *u
	oidc.Path = path + "/.well-known/openid-configuration"
	rfc := *u
	rfc.Path = "/.well-known/oauth-authorization-server" + path
	return []string{oidc.String(), rfc.String()}, nil
}

// Discover reads issuer's metadata from the first of MetadataURLs that
// answers 200. The metadata's issuer must be the one asked for (RFC 8414
// §3.3; a trailing slash aside) and its endpoints must pass CheckURL.
func Discover(ctx context.Context, hc *http.Client, issuer string) (*Metadata, error) {
	if err := CheckURL(issuer); err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	urls, err := MetadataURLs(issuer)
	if err != nil {
		return nil, err
	}
	var errs []string
	for _, u := range urls {
		md, err := fetchMetadata(ctx, hc, u)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if strings.TrimSuffix(md.Issuer, "/") != strings.TrimSuffix(issuer, "/") {
			return nil, fmt.Errorf("%s names issuer %q, not %q", u, md.Issuer, issuer)
		}
		for _, ep := range []string{md.AuthorizationEndpoint, md.TokenEndpoint, md.DeviceAuthorizationEndpoint, md.RevocationEndpoint, md.UserinfoEndpoint} {
			if ep == "" {
				continue
			}
			if err := CheckURL(ep); err != nil {
				return nil, fmt.Errorf("%s: endpoint %q: %w", u, ep, err)
			}
		}
		if md.TokenEndpoint == "" {
			return nil, fmt.Errorf("%s names no token_endpoint", u)
		}
		return md, nil
	}
	return nil, fmt.Errorf("no metadata for issuer %q: %s", issuer, strings.Join(errs, "; "))
}

func fetchMetadata(ctx context.Context, hc *http.Client, u string) (*Metadata, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %v", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d", u, resp.StatusCode)
	}
	md := new(Metadata)
	if err := json.Unmarshal(body, md); err != nil {
		return nil, fmt.Errorf("GET %s: not a metadata document: %v", u, err)
	}
	return md, nil
}
