package tokenbroker

// The provider gateway's rules hold for every caller: each case below makes
// one kind of provider request, and every rule is checked against it.

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// sendCounter counts the requests the backend sends to any provider.
type sendCounter struct {
	next http.RoundTripper
	n    atomic.Int64
}

func (c *sendCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

// countRequests makes every HTTP client the backend builds from now on count
// its requests in the returned transport.
func countRequests(e *env) *sendCounter {
	counter := &sendCounter{}
	e.b.newHTTPClient = func(caPEM string) (*http.Client, error) {
		c, err := provider.NewHTTPClient(caPEM)
		if err != nil {
			return nil, err
		}
		counter.next = c.Transport
		c.Transport = counter
		return c, nil
	}
	return counter
}

// gatewayCaller is one caller of the gateway: prepare brings a fresh env to
// just before its request and returns the call that makes it. A silent
// caller has nobody to tell of a request not sent (a device poll asks again
// after its interval): only what reaches the provider is checked.
type gatewayCaller struct {
	name    string
	prepare func(e *env) (call func() error)
	silent  bool
}

func gatewayCallers() []gatewayCaller {
	readCreds := func(e *env, name string) func() error {
		return func() error { _, err := e.creds(name, nil); return err }
	}
	githubApp := func(e *env) {
		e.fake.AddAssertionKey("77", "", &testRSA.PublicKey)
		e.fake.AddGitHubInstallation("77", "octo", false, 9, "dotfiles")
		e.configSigned("gh", "github_app", map[string]any{"api_url": e.fake.URL() + fakeprovider.PathGitHubAPI, "app_id": "77",
			"installation_owner": "octo", "private_key": pkcs1PEM(testRSA)})
	}
	return []gatewayCaller{
		{"renewal", func(e *env) func() error {
			e.config("x", fakeprovider.OAuth2, nil)
			return readCreds(e, "x")
		}, false},
		{"code exchange", func(e *env) func() error {
			e.userConfig("u", nil)
			authURL, _ := e.authorize("u")
			back := e.approve(authURL)
			return func() error {
				if status, page := e.callback(back); status != http.StatusOK {
					return fmt.Errorf("callback %d: %s", status, page)
				}
				return nil
			}
		}, false},
		{"device authorization", func(e *env) func() error {
			e.userConfig("u", nil)
			return func() error { _, err := e.do(logical.UpdateOperation, "device/u", nil); return err }
		}, false},
		{"device poll", func(e *env) func() error {
			e.drivePolls(e.t.(*testing.T)) // the background poller waits for the test
			e.userConfig("u", nil)
			e.startDevice("u")
			var p pendingDevice
			if _, err := deviceEntries.loadInto(context.Background(), e.storage, "u", &p); err != nil {
				e.t.Fatal(err)
			}
			return func() error {
				e.b.pollOnce("u", p.DeviceCode)
				if p, ok := e.b.onboard.outcomes.Load("u"); ok {
					return fmt.Errorf("poll: %s", p.(outcome).result)
				}
				return nil
			}
		}, true},
		{"installation lookup", func(e *env) func() error {
			githubApp(e)
			return readCreds(e, "gh")
		}, false},
		{"revocation", func(e *env) func() error {
			githubApp(e)
			e.token("gh")
			return func() error {
				resp, err := e.do(logical.DeleteOperation, "creds/gh", nil)
				if err == nil && resp != nil && len(resp.Warnings) > 0 {
					err = fmt.Errorf("%s", strings.Join(resp.Warnings, "; "))
				}
				return err
			}
		}, false},
		{"issuer discovery", func(e *env) func() error {
			return func() error {
				_, err := e.do(logical.CreateOperation, "config/i", map[string]any{
					"issuer": e.fake.URL(), "ca_pem": e.fake.CAPEM(), "client_id": testClientID, "client_secret": testClientSecret})
				return err
			}
		}, false},
	}
}

func TestGatewayRulesHoldForEveryCaller(t *testing.T) {
	rules := []struct {
		name    string
		arrange func(e *env) // just before the call
		wantErr string       // what the call's error says ("": it succeeds)
		sends   bool         // whether the request reaches the provider
	}{
		{"it sends and succeeds", func(*env) {}, "", true},
		{"an orphaned plugin process sends nothing", func(*env) {
			VaultAlive = func() bool { return false }
		}, "not sent", false},
		{"a host at its rate limit is paced (here: past the call's time limit)", func(e *env) {
			e.mustDo(logical.UpdateOperation, "settings", map[string]any{"rate_limit": 0.001, "rate_limit_burst": 1})
			e.b.limits.configure(0.001, 1)
			if err := e.b.limits.wait(context.Background(), hostOf(e.fake.URL()), e.clock.Now()); err != nil {
				e.t.Fatal(err) // the host's one call in its budget
			}
		}, "rate_limit", false},
		{"a host under a provider's Retry-After is held for every caller", func(e *env) {
			e.b.limits.pause(hostOf(e.fake.URL()), e.clock.Now().Add(time.Minute))
		}, "Retry-After", false},
	}
	for _, caller := range gatewayCallers() {
		t.Run(caller.name, func(t *testing.T) {
			for _, rule := range rules {
				t.Run(rule.name, func(t *testing.T) {
					t.Cleanup(func() { VaultAlive = func() bool { return true } })
					e := newEnv(t)
					sent := countRequests(e)
					call := caller.prepare(e)
					before := sent.n.Load()
					rule.arrange(e)
					err := call()
					switch {
					case rule.wantErr == "" && err != nil:
						t.Fatalf("call: %v, want success", err)
					case rule.wantErr != "" && !caller.silent && (err == nil || !strings.Contains(err.Error(), rule.wantErr)):
						t.Fatalf("call: err = %v, want one saying %q", err, rule.wantErr)
					}
					if got := sent.n.Load() - before; (got > 0) != rule.sends {
						t.Fatalf("requests sent = %d, want sent %v", got, rule.sends)
					}
				})
			}
		})
	}
}

// A 429 with Retry-After answering a device poll holds the host for the
// renewals of every other config too.
func TestRetryAfterFromADevicePollHoldsRenewals(t *testing.T) {
	e := newEnv(t)
	e.drivePolls(t)
	e.userConfig("u", nil)
	e.config("x", fakeprovider.OAuth2, nil)
	e.startDevice("u")
	var p pendingDevice
	if _, err := deviceEntries.loadInto(context.Background(), e.storage, "u", &p); err != nil {
		t.Fatal(err)
	}
	e.fake.Fail(1, fakeprovider.Fail429) // Retry-After: 2
	e.b.pollOnce("u", p.DeviceCode)
	calls := e.fake.TotalCalls()
	_, err := e.creds("x", nil)
	expectErr(t, "a renewal right after the poll's 429", err, "Retry-After")
	expect(t, "calls during Retry-After", e.fake.TotalCalls(), calls)
	e.clock.Add(3 * time.Second)
	expect(t, "a token after Retry-After", e.fake.Valid(e.token("x")), true)
}
