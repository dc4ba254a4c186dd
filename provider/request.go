package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// userAgent names us to providers; some block Go's default agent.
const userAgent = "vault-plugin-secrets-tokenbroker"

// NewRequest builds the HTTP request for grant. refreshToken is used only for
// GrantRefreshToken.
func (e *Endpoint) NewRequest(ctx context.Context, grant Grant, refreshToken string) (*http.Request, error) {
	if e.Dialect == APIVideo {
		return e.apiVideoRequest(ctx, grant, refreshToken)
	}
	target := e.TokenURL
	params := []param{{"grant_type", string(grant)}}
	withSecret := true
	switch grant {
	case GrantClientCredentials:
		if len(e.Scopes) > 0 {
			params = append(params, param{"scope", e.Scopes})
		}
		if e.Audience != "" {
			params = append(params, param{"audience", e.Audience})
		}
	case GrantRefreshToken:
		if refreshToken == "" {
			return nil, fmt.Errorf("refresh grant without a refresh token")
		}
		target = e.EffectiveRefreshURL()
		params = append(params, param{"refresh_token", refreshToken})
		withSecret = e.preset().refreshWithSecret
	default:
		return nil, fmt.Errorf("provider %s does not support grant %s", e.Dialect, grant)
	}
	for _, k := range sortedKeys(e.ExtraParams) {
		params = append(params, param{k, e.ExtraParams[k]})
	}

	basic := e.EffectiveAuthStyle() == AuthBasic && withSecret && e.ClientSecret != ""
	if !basic && e.ClientID != "" {
		params = append(params, param{"client_id", e.ClientID})
		if withSecret && e.ClientSecret != "" {
			params = append(params, param{"client_secret", e.ClientSecret})
		}
	}

	req, err := e.encode(ctx, target, params)
	if err != nil {
		return nil, err
	}
	if basic {
		// RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
		req.SetBasicAuth(url.QueryEscape(e.ClientID), url.QueryEscape(e.ClientSecret))
	}
	return req, nil
}

// param is one request parameter; value is a string or, for scope, a []string.
type param struct {
	key   string
	value any
}

func (p param) text() string {
	if list, ok := p.value.([]string); ok {
		return strings.Join(list, " ") // RFC 6749 §3.3: space-delimited
	}
	return p.value.(string)
}

func (e *Endpoint) encode(ctx context.Context, target string, params []param) (*http.Request, error) {
	var (
		body        io.Reader
		contentType string
	)
	switch e.EffectiveEncoding() {
	case EncodeJSON:
		obj := make(map[string]any, len(params))
		for _, p := range params {
			if _, isList := p.value.([]string); isList && e.preset().scopeArray {
				obj[p.key] = p.value
			} else {
				obj[p.key] = p.text()
			}
		}
		b, err := json.Marshal(obj)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		body, contentType = bytes.NewReader(b), "application/json"
	case EncodeQuery:
		u, err := url.Parse(target)
		if err != nil {
			return nil, fmt.Errorf("token URL: %w", err)
		}
		q := u.Query()
		for _, p := range params {
			q.Set(p.key, p.text())
		}
		u.RawQuery = q.Encode()
		target = u.String()
	default:
		form := make(url.Values, len(params))
		for _, p := range params {
			form.Set(p.key, p.text())
		}
		body, contentType = strings.NewReader(form.Encode()), "application/x-www-form-urlencoded"
	}
	return newPost(ctx, target, body, contentType)
}

func newPost(ctx context.Context, target string, body io.Reader, contentType string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	return req, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// apiVideoRequest: api.video takes {"apiKey"} at the token URL and
// {"refreshToken"} at <origin>/auth/refresh, both JSON.
func (e *Endpoint) apiVideoRequest(ctx context.Context, grant Grant, refreshToken string) (*http.Request, error) {
	var (
		target = e.TokenURL
		obj    map[string]string
	)
	switch grant {
	case GrantAPIKey:
		obj = map[string]string{"apiKey": e.APIKey}
	case GrantRefreshToken:
		if refreshToken == "" {
			return nil, fmt.Errorf("refresh grant without a refresh token")
		}
		target = e.EffectiveRefreshURL()
		obj = map[string]string{"refreshToken": refreshToken}
	default:
		return nil, fmt.Errorf("provider %s does not support grant %s", e.Dialect, grant)
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	return newPost(ctx, target, bytes.NewReader(b), "application/json")
}
