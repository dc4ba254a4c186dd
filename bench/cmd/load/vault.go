package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

// vaultClient calls Vault's HTTP API with a token, over keep-alive connections.
type vaultClient struct {
	addr, token string
	hc          *http.Client
}

// newVaultClient returns a client that keeps up to conns idle connections.
func newVaultClient(addr, token string, conns int) *vaultClient {
	tr := &http.Transport{
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &vaultClient{addr: strings.TrimRight(addr, "/"), token: token, hc: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

// client returns a new client of the Vault under test, with its own pool of
// up to conns connections (d.vault is shared by the scenarios' setup calls).
func (d *driver) client(conns int) *vaultClient {
	return newVaultClient(d.cfg.addr, d.cfg.token, conns)
}

// call does one API request and returns the status and body.
func (v *vaultClient) call(method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, v.addr+"/v1/"+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("X-Vault-Token", v.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := v.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

// must does a request that has to succeed (2xx) and returns the body.
func (v *vaultClient) must(method, path string, body any) ([]byte, error) {
	status, raw, err := v.call(method, path, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if status/100 != 2 {
		return nil, fmt.Errorf("%s %s: HTTP %d: %s", method, path, status, bytes.TrimSpace(raw))
	}
	return raw, nil
}

// data returns the "data" object of a Vault response body.
func data(raw []byte) (map[string]any, error) {
	var r struct {
		Data map[string]any `json:"data"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, err
	}
	return r.Data, nil
}

// accessToken returns the access token of a creds response body, or "".
func accessToken(raw []byte) string {
	var r struct {
		Data struct {
			AccessToken string `json:"access_token"`
		} `json:"data"`
	}
	_ = json.Unmarshal(raw, &r)
	return r.Data.AccessToken
}

// configBody is the body of a config/<name> write against f.
func configBody(f *fake, refreshAhead time.Duration) map[string]any {
	return map[string]any{
		"provider":      "echo360",
		"token_url":     f.URL() + fakeprovider.Echo360.TokenPath(),
		"client_id":     clientID,
		"client_secret": clientSecret,
		"ca_pem":        f.CAPEM(),
		"refresh_ahead": int(refreshAhead / time.Second),
	}
}

// narrowedConfigBody is config/<name>'s body for narrowed reads against f:
// its oauth2 endpoint (which takes a scope), read allowed.
func narrowedConfigBody(f *fake, refreshAhead time.Duration) map[string]any {
	body := configBody(f, refreshAhead)
	body["provider"], body["token_url"], body["allowed_scopes"] = "oauth2", f.URL()+fakeprovider.PathOAuth2Token, "read"
	return body
}

// scenarioProvider starts a fake provider (token lifetime, latency per token
// request) and writes config/<name> against it, with refreshAhead. The
// caller defers cleanup, which deletes the config, so later periodic passes
// do not keep calling a closed port, and then stops the provider.
func (d *driver) scenarioProvider(name string, lifetime, latency, refreshAhead time.Duration) (f *fake, cleanup func(), err error) {
	if f, err = newFake(lifetime, latency); err != nil {
		return nil, nil, err
	}
	if err := d.configure(name, f, refreshAhead); err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, func() { d.forget(name); f.Close() }, nil
}

// configure writes config/<name> against f.
func (d *driver) configure(name string, f *fake, refreshAhead time.Duration) error {
	_, err := d.vault.must("PUT", "tokenbroker/config/"+name, configBody(f, refreshAhead))
	return err
}

// forget deletes config/<name>.
func (d *driver) forget(name string) {
	if _, err := d.vault.must("DELETE", "tokenbroker/config/"+name, nil); err != nil {
		logf("cleanup: %v", err)
	}
}
