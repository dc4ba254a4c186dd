package main

// Vault's HTTP API, over keep-alive loopback connections, with each
// request's latency.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

type api struct {
	addr, token string
	hc          *http.Client
}

// newAPI returns a client that keeps up to conns idle connections.
func newAPI(addr, token string, conns int) *api {
	return &api{addr: addr, token: token, hc: &http.Client{
		Timeout: time.Minute,
		Transport: &http.Transport{
			MaxIdleConns: conns, MaxIdleConnsPerHost: conns,
			IdleConnTimeout: 2 * time.Minute, DisableCompression: true,
		},
	}}
}

// reply is one answer of the API.
type reply struct {
	status int
	body   []byte
	took   time.Duration // from sending the request to the end of the body
}

// do sends one request; path is below /v1/ and may carry a query.
func (a *api) do(ctx context.Context, method, path string, body any) (reply, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return reply{}, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.addr+"/v1/"+path, rd)
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("X-Vault-Token", a.token)
	t0 := time.Now()
	resp, err := a.hc.Do(req)
	if err != nil {
		return reply{took: time.Since(t0)}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, body: raw, took: time.Since(t0)}, err
}

// ok is do for a request that has to succeed (2xx).
func (a *api) ok(ctx context.Context, method, path string, body any) (reply, error) {
	r, err := a.do(ctx, method, path, body)
	if err == nil && r.status/100 != 2 {
		err = fmt.Errorf("%s %s: HTTP %d: %s", method, path, r.status, oneLine(string(r.body)))
	}
	return r, err
}

// decode unmarshals the reply's "data" (and warnings) into out.
func (r reply) decode(out any) error {
	return json.Unmarshal(r.body, out)
}

// credsExpiry is the expires_at_seconds of a creds read's reply.
func (r reply) credsExpiry() (int64, error) {
	var v struct {
		Data struct {
			ExpiresAtSeconds *int64 `json:"expires_at_seconds"`
		} `json:"data"`
	}
	if err := r.decode(&v); err != nil {
		return 0, err
	}
	if v.Data.ExpiresAtSeconds == nil {
		return 0, fmt.Errorf("no expires_at_seconds in the creds reply")
	}
	return *v.Data.ExpiresAtSeconds, nil
}
