package main

// The upstream: the fake provider (Echo360 dialect or -dialect, plain HTTP on
// 127.0.0.1, which the plugin allows for loopback hosts) behind a reverse
// proxy that counts every request by the second it arrived in, and that can
// play a provider capped at some requests a second: a token bucket of that
// rate and burst, above which it answers 429 with Retry-After: 1 without
// asking the fake.

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

// The one client every config (or the app) uses; rotate changes its secret.
const (
	clientID     = "scale-client"
	clientSecret = "scale-client-secret"
)

type upstream struct {
	fake *fakeprovider.Server
	srv  *http.Server
	url  string // the proxy's base URL
	t0   time.Time
	d    fakeprovider.Dialect

	mu       sync.Mutex
	perSec   []int // requests arriving in each second since t0
	total    int   // requests arrived
	rejected int   // answered 429 by the cap
	failed   int   // the fake did not answer (502)
	refused  int   // the fake answered 4xx (a client refused, a grant refused)
	bucket   *tokenBucket
}

// counts is the upstream's counters at one moment.
type counts struct {
	at                               time.Time
	total, rejected, failed, refused int
}

func startUpstream(lifetime time.Duration, d fakeprovider.Dialect, tokenSize int) (*upstream, error) {
	fake := fakeprovider.New(fakeprovider.Options{Lifetime: lifetime})
	fake.AddClient(clientID, clientSecret)
	fake.SetAccessTokenSize(tokenSize)
	if err := fake.Start(); err != nil {
		return nil, err
	}
	target, err := url.Parse(fake.URL())
	if err != nil {
		fake.Close()
		return nil, err
	}
	u := &upstream{fake: fake, t0: time.Now(), d: d}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) },
		ModifyResponse: func(resp *http.Response) error {
			if resp.StatusCode/100 == 4 {
				u.mu.Lock()
				u.refused++
				u.mu.Unlock()
			}
			return nil
		},
		Transport: &http.Transport{
			MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute,
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) {
			u.mu.Lock()
			u.failed++
			u.mu.Unlock()
			w.WriteHeader(http.StatusBadGateway)
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fake.Close()
		return nil, err
	}
	u.url = "http://" + ln.Addr().String()
	u.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !u.admit(time.Now()) {
				w.Header().Set("Retry-After", "1")
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusTooManyRequests)
				_, _ = io.WriteString(w, `{"error":"rate_limited","error_description":"more than the provider allows a second"}`)
				return
			}
			proxy.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go func() { _ = u.srv.Serve(ln) }()
	return u, nil
}

// tokenURL is the token endpoint the configs name: the proxy's.
func (u *upstream) tokenURL() string { return u.url + u.d.TokenPath() }

// rotateSecret makes the fake accept secret, and only it, for the client
// from now on.
func (u *upstream) rotateSecret(secret string) { u.fake.AddClient(clientID, secret) }

// admit counts a request arriving at now and says whether the cap lets it through.
func (u *upstream) admit(now time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	sec := int(now.Sub(u.t0) / time.Second)
	for len(u.perSec) <= sec {
		u.perSec = append(u.perSec, 0)
	}
	u.perSec[sec]++
	u.total++
	if u.bucket != nil && !u.bucket.take(now) {
		u.rejected++
		return false
	}
	return true
}

// capAt caps the provider at perSecond requests a second (burst as many);
// 0 lifts the cap.
func (u *upstream) capAt(perSecond int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.bucket = nil
	if perSecond > 0 {
		u.bucket = &tokenBucket{rate: float64(perSecond), burst: float64(perSecond), tokens: float64(perSecond), last: time.Now()}
	}
}

func (u *upstream) now() counts {
	u.mu.Lock()
	defer u.mu.Unlock()
	return counts{at: time.Now(), total: u.total, rejected: u.rejected, failed: u.failed, refused: u.refused}
}

// traffic is what the upstream saw between two readings of its counters.
type traffic struct {
	calls, rejected, failed, refused int
	span                             time.Duration
	busiest                          int // requests in the busiest whole second within the span
	busiestAt                        time.Duration
}

func (t traffic) mean() float64 { return float64(t.calls) / t.span.Seconds() }

// between returns the traffic from a to b (a taken before b).
func (u *upstream) between(a, b counts) traffic {
	u.mu.Lock()
	defer u.mu.Unlock()
	t := traffic{calls: b.total - a.total, rejected: b.rejected - a.rejected, failed: b.failed - a.failed, refused: b.refused - a.refused, span: b.at.Sub(a.at)}
	first := int((a.at.Sub(u.t0) + time.Second - 1) / time.Second) // the first whole second in the span
	last := int(b.at.Sub(u.t0) / time.Second)                      // the first second not whole in it
	for sec := first; sec < last && sec < len(u.perSec); sec++ {
		if u.perSec[sec] > t.busiest {
			t.busiest, t.busiestAt = u.perSec[sec], time.Duration(sec)*time.Second-a.at.Sub(u.t0)
		}
	}
	return t
}

// perSecond returns the requests of each whole second from a to b.
func (u *upstream) perSecond(a, b counts) []int {
	u.mu.Lock()
	defer u.mu.Unlock()
	first := int((a.at.Sub(u.t0) + time.Second - 1) / time.Second)
	last := min(int(b.at.Sub(u.t0)/time.Second), len(u.perSec))
	if first >= last {
		return nil
	}
	return append([]int(nil), u.perSec[first:last]...)
}

func (u *upstream) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = u.srv.Shutdown(ctx)
	u.fake.Close()
}

// tokenBucket admits rate requests a second on average, burst at once.
type tokenBucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func (b *tokenBucket) take(now time.Time) bool {
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
