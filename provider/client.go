package provider

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"sync/atomic"
	"time"

	cleanhttp "github.com/hashicorp/go-cleanhttp"
)

// MaxBody caps how much of a provider's response is read: a token response is
// a few KiB, so anything near this is a misbehaving or hostile endpoint.
const MaxBody = 1 << 20

// Client exchanges grants for tokens over HTTP.
type Client struct {
	HTTP *http.Client
}

// NewHTTPClient returns a pooled client that trusts caPEM (when set) instead of
// the system roots, and never follows redirects: a redirected token request
// would carry credentials to a host nobody configured.
func NewHTTPClient(caPEM string) (*http.Client, error) {
	transport := cleanhttp.DefaultPooledTransport()
	// One client serves every name that trusts the same CA, and the background
	// pass runs many refreshes at once: keep their connections (and TLS
	// sessions) instead of re-handshaking.
	transport.MaxIdleConnsPerHost = 32
	transport.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if caPEM != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(caPEM)) {
			return nil, errors.New("ca_pem holds no PEM certificate")
		}
		transport.TLSClientConfig.RootCAs = pool
	}
	return &http.Client{
		Transport: transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}, nil
}

// Exchange performs grant against e and returns the token. Errors are *Error.
func (c *Client) Exchange(ctx context.Context, e *Endpoint, grant Grant, refreshToken string) (*Token, error) {
	secrets := []string{e.ClientSecret, e.APIKey, refreshToken}
	req, err := e.NewRequest(ctx, grant, refreshToken)
	if err != nil {
		return nil, &Error{Class: Refused, Description: redact(err.Error(), secrets)}
	}
	// Whether the request was written decides whether a lost answer may have
	// spent a single-use refresh token.
	var wrote atomic.Bool
	req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				wrote.Store(true)
			}
		},
	}))
	resp, err := c.HTTP.Do(req)
	if err != nil {
		class := Temporary
		if wrote.Load() {
			class = Lost
		}
		return nil, &Error{Class: class, Description: redact(transportMessage(req, err), secrets)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	if err != nil {
		return nil, &Error{Class: Lost, Status: resp.StatusCode, Description: "reading the response: " + redact(err.Error(), secrets)}
	}
	if len(body) > MaxBody {
		return nil, &Error{Class: Refused, Status: resp.StatusCode, Description: "the provider's response is larger than 1 MiB"}
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return nil, &Error{Class: Refused, Status: resp.StatusCode, Description: "the provider redirected the token request; configure the final URL instead"}
	}
	tok, err := parseResponse(resp.StatusCode, resp.Header.Get("Content-Type"), body)
	if err != nil {
		var pe *Error
		if errors.As(err, &pe) {
			pe.Code = redact(pe.Code, secrets)
			pe.Description = redact(pe.Description, secrets)
			pe.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
		}
		return nil, err
	}
	return tok, nil
}

// transportMessage describes a failed round trip without the URL's query
// string, where the query encoding puts credentials.
func transportMessage(req *http.Request, err error) string {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			break
		}
		err = u
	}
	where := req.URL.Scheme + "://" + req.URL.Host + req.URL.Path
	return fmt.Sprintf("POST %s: %v", where, err)
}

// retryAfter parses a Retry-After header (seconds or an HTTP date), capped at an hour.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.Atoi(v); err == nil {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), time.Hour)
}
