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
	// BodyLimit replaces MaxBody for answers known to be large (0: MaxBody).
	BodyLimit int64
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
	return c.Send(ctx, e, TokenRequest{Grant: grant, RefreshToken: refreshToken})
}

// Send performs in against e and returns the token. Errors are *Error; a
// provider's refusal of in's narrowing says so (Error.NarrowingRefused).
func (c *Client) Send(ctx context.Context, e *Endpoint, in TokenRequest) (*Token, error) {
	tok, err := c.send(ctx, e, in)
	if err != nil {
		return nil, noteNarrowing(e, in, err)
	}
	return tok, nil
}

func (c *Client) send(ctx context.Context, e *Endpoint, in TokenRequest) (*Token, error) {
	r := e.Redactor(in.secrets()...)
	if g := e.mint(); in.Grant == g.name && g.exchange != nil {
		n, err := e.narrowing(g, &in)
		if err != nil {
			return nil, r.refusal(err)
		}
		tok, err := g.exchange(c, ctx, n) // not an RFC 6749 token request
		if err != nil {
			return nil, err
		}
		if err := tok.check(0); err != nil {
			return nil, err
		}
		return tok, nil
	}
	req, err := e.NewTokenRequest(ctx, in)
	if err != nil {
		return nil, r.refusal(err)
	}
	if in.Grant == GrantTokenExchange {
		return exchanged(c, e, req, r, in.Exchange)
	}
	return c.token(e, req, r)
}

// token sends req and reads a token response. r removes what the request
// carries from any error. A refresh token whose lifetime the provider did not
// announce gets the dialect's documented one.
func (c *Client) token(e *Endpoint, req *http.Request, r *Redactor) (*Token, error) {
	tok, err := answer(c, req, r, parseResponse)
	if err != nil {
		return nil, err
	}
	if tok.RefreshToken != "" && tok.RefreshExpiresIn == 0 {
		tok.RefreshExpiresIn = e.row().refreshLifetime
	}
	return tok, nil
}

// answer sends req and reads the answer with parse; r cleans an error, which
// notes the provider's Retry-After.
func answer[T any](c *Client, req *http.Request, r *Redactor, parse func(status int, contentType string, body []byte) (T, error)) (T, error) {
	var zero T
	status, contentType, retry, body, err := c.roundTrip(req, r)
	if err != nil {
		return zero, err
	}
	v, err := parse(status, contentType, body)
	if err != nil {
		return zero, cleaned(err, r, retry)
	}
	return v, nil
}

// roundTrip sends req and returns the answer's status, content type,
// Retry-After and body (capped at MaxBody). Errors are *Error, cleaned by r:
// a failed round trip is Temporary when the request was not written, else Lost.
func (c *Client) roundTrip(req *http.Request, r *Redactor) (status int, contentType string, retry time.Duration, body []byte, err error) {
	// Whether the request was written decides whether a lost answer may have
	// spent a single-use refresh token.
	var wrote atomic.Bool
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
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
		return 0, "", 0, nil, &Error{Class: class, Description: r.Redact(transportMessage(req, err))}
	}
	defer resp.Body.Close()
	limit := int64(MaxBody)
	if c.BodyLimit > 0 {
		limit = c.BodyLimit
	}
	body, err = io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return 0, "", 0, nil, &Error{Class: Lost, Status: resp.StatusCode, Description: r.Redact("reading the response: " + err.Error())}
	}
	if int64(len(body)) > limit {
		return 0, "", 0, nil, &Error{Class: Refused, Status: resp.StatusCode, Description: fmt.Sprintf("the provider's response is larger than %d MiB", limit>>20)}
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return 0, "", 0, nil, &Error{Class: Refused, Status: resp.StatusCode, Description: "the provider redirected the request; configure the final URL instead"}
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), retryAfter(resp.Header.Get("Retry-After"), time.Now()), body, nil
}

// cleaned removes with r the request's credentials from a provider's error,
// and notes its Retry-After.
func cleaned(err error, r *Redactor, retry time.Duration) error {
	var pe *Error
	if !errors.As(err, &pe) {
		return &Error{Class: Refused, Description: r.Redact(err.Error()), RetryAfter: retry}
	}
	pe.Code = r.Redact(pe.Code)
	pe.Description = r.Redact(pe.Description)
	pe.RetryAfter = retry
	return err
}

// refusal is err, met before anything was sent, as a refused *Error cleaned by r.
func (r *Redactor) refusal(err error) *Error {
	return &Error{Class: Refused, Description: r.Redact(err.Error())}
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
	return fmt.Sprintf("%s %s: %v", req.Method, where, err)
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
