package main

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

// The one client every fake provider knows.
const (
	clientID     = "bench-client"
	clientSecret = "bench-client-secret"
)

// fake is a fake provider (TLS, Echo360 dialect) that keeps the time it
// answered each token request.
type fake struct {
	*fakeprovider.Server
	mu    sync.Mutex
	times []time.Time
}

// newFake starts a fake provider that issues tokens of the given lifetime
// and waits latency before answering each token request.
func newFake(lifetime, latency time.Duration) (*fake, error) {
	f := &fake{}
	f.Server = fakeprovider.New(fakeprovider.Options{
		TLS: true, Lifetime: lifetime, Latency: latency,
		Logf: func(format string, _ ...any) {
			if strings.Contains(format, "dialect=") { // one line per token request
				f.mu.Lock()
				f.times = append(f.times, time.Now())
				f.mu.Unlock()
			}
		},
	})
	f.AddClient(clientID, clientSecret)
	return f, f.Start()
}

// answered counts the token requests answered so far (TotalCalls counts them
// when they arrive, before the provider latency).
func (f *fake) answered() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.times)
}

// callTimes returns when each token request so far was answered.
func (f *fake) callTimes() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.times)
}
