package tokenbroker

// device/<name>: a device authorization (RFC 8628) against the strict fake,
// with the poller's waits driven step by step on the test clock.

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// polls hands the poller's waits to the test: each wait asks for a
// duration, and the test says how far the clock moves before the next poll.
type polls struct {
	t       *testing.T
	e       *env
	asks    chan time.Duration
	advance chan time.Duration
	stopped chan struct{}  // closed when the backend's pollers have all stopped
	pending *time.Duration // an ask received and not yet answered
}

func (e *env) drivePolls(t *testing.T) *polls {
	p := &polls{t: t, e: e, asks: make(chan time.Duration), advance: make(chan time.Duration)}
	e.b.onboard.wait = func(ctx context.Context, d time.Duration) bool {
		select {
		case p.asks <- d:
		case <-ctx.Done():
			return false
		}
		select {
		case d := <-p.advance:
			e.clock.Add(d)
			return true
		case <-ctx.Done():
			return false
		}
	}
	return p
}

// await returns the poller's next ask, or nil once it has stopped.
func (p *polls) await() *time.Duration {
	p.t.Helper()
	if p.pending != nil {
		d := p.pending
		p.pending = nil
		return d
	}
	stopped, b := make(chan struct{}), p.e.b
	go func() { b.onboard.polls.Wait(); close(stopped) }()
	select {
	case d := <-p.asks:
		return &d
	case <-stopped:
		return nil
	case <-time.After(10 * time.Second):
		p.t.Fatal("the poller neither asked to wait nor stopped within 10 s")
		return nil
	}
}

// next lets one poll happen after the clock moves by what move makes of the
// asked wait, waits until that poll is answered, and returns the asked wait.
func (p *polls) next(move func(asked time.Duration) time.Duration) time.Duration {
	p.t.Helper()
	d := p.await()
	if d == nil {
		p.t.Fatal("the poller stopped, want it polling")
	}
	p.advance <- move(*d)
	p.pending = p.await() // the poll is answered once the poller asks again, or stops
	return *d
}

// done fails unless the poller has stopped: the authorization was decided.
func (p *polls) done() {
	p.t.Helper()
	if d := p.await(); d != nil {
		p.t.Fatalf("the poller goes on (asks to wait %s), want it stopped", *d)
	}
}

func asAsked(d time.Duration) time.Duration { return d }

func (e *env) startDevice(name string) map[string]any {
	e.t.Helper()
	return e.mustDo(logical.UpdateOperation, "device/"+name, nil).Data
}

func TestDeviceApprovedConnects(t *testing.T) {
	e := newEnv(t)
	p := e.drivePolls(t)
	e.userConfig("u", nil)
	resp := e.startDevice("u")
	expectField(t, resp, "interval", int64(5))
	expectField(t, resp, "expires_at", testStart.Add(10*time.Minute).Format(time.RFC3339))
	code, _ := resp["user_code"].(string)
	if code == "" || resp["verification_uri"] != e.fake.URL()+"/device" || resp["verification_uri_complete"] == "" {
		t.Fatalf("device/u = %v, want user_code and the fake's verification URIs", resp)
	}
	if _, has := resp["device_code"]; has {
		t.Fatal("device/u shows the device code, a credential")
	}

	expect(t, "first wait", p.next(asAsked), 5*time.Second)
	expect(t, "wait after authorization_pending", p.next(asAsked), 5*time.Second)
	status := e.status("u")
	expectField(t, status, "pending_authorization", "device")
	expectField(t, status, "user_code", code)

	if err := e.fake.ApproveDevice(code); err != nil {
		t.Fatal(err)
	}
	p.next(asAsked)
	p.done()
	if !e.fake.Valid(e.token("u")) {
		t.Fatal("the device-authorized token is not accepted by the provider")
	}
	status = e.status("u")
	expectField(t, status, "pending_authorization", "")
	expectField(t, status, "last_grant", "urn:ietf:params:oauth:grant-type:device_code")
	expectField(t, status, "last_authorization", "connected")
	if status["connected_at"] == "" {
		t.Fatalf("connected_at empty after a device authorization: %v", status)
	}
	expectSeries(t, scrapeSeries(e), map[string]float64{ // every request to the provider is counted
		`tokenbroker_provider_requests_total{error="none",grant="device_authorization",name="u",outcome="success"}`:                                          1,
		`tokenbroker_provider_requests_total{error="authorization_pending",grant="urn:ietf:params:oauth:grant-type:device_code",name="u",outcome="refused"}`: 2,
		`tokenbroker_provider_requests_total{error="none",grant="urn:ietf:params:oauth:grant-type:device_code",name="u",outcome="success"}`:                  1,
	})
}

func TestDeviceDecisions(t *testing.T) {
	cases := []struct {
		name string
		// act runs after the first (pending) poll.
		act  func(e *env, p *polls, userCode string)
		want string
	}{
		{"the user denies", func(e *env, p *polls, code string) {
			if err := e.fake.DenyDevice(code); err != nil {
				t.Fatal(err)
			}
			p.next(asAsked)
		}, "the user denied the device authorization"},
		{"the code expires", func(e *env, p *polls, _ string) {
			p.next(func(time.Duration) time.Duration { return 10 * time.Minute })
		}, "the device authorization expired before the user approved it"},
		{"polled too fast, the poller slows down by 5 s", func(e *env, p *polls, code string) {
			p.next(func(time.Duration) time.Duration { return time.Second }) // too soon: slow_down
			expect(t, "wait after slow_down", p.next(asAsked), 10*time.Second)
			expect(t, "wait after a pending answer", p.next(asAsked), 10*time.Second)
			if err := e.fake.ApproveDevice(code); err != nil {
				t.Fatal(err)
			}
			p.next(asAsked)
		}, "connected"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			p := e.drivePolls(t)
			e.userConfig("u", nil)
			code := e.startDevice("u")["user_code"].(string)
			p.next(asAsked) // the first poll: authorization_pending
			c.act(e, p, code)
			p.done()
			status := e.status("u")
			expectField(t, status, "last_authorization", c.want)
			expectField(t, status, "pending_authorization", "")
			if connected := e.storedState("u") != nil; connected != (c.want == "connected") {
				t.Fatalf("a chain stored = %v, want %v", connected, c.want == "connected")
			}
		})
	}
}

func TestDeviceReplacedByANewerOne(t *testing.T) {
	e := newEnv(t)
	p := e.drivePolls(t)
	e.userConfig("u", nil)
	first := e.startDevice("u")["user_code"].(string)
	p.next(asAsked)
	second := e.startDevice("u")["user_code"].(string)
	if err := e.fake.ApproveDevice(first); err != nil {
		t.Fatal(err)
	}
	p.next(asAsked) // polls the newer code: still pending
	expectField(t, e.status("u"), "user_code", second)
	if e.storedState("u") != nil {
		t.Fatal("approving the replaced user code connected the name")
	}
	if err := e.fake.ApproveDevice(second); err != nil {
		t.Fatal(err)
	}
	p.next(asAsked)
	p.done()
	expectField(t, e.status("u"), "last_authorization", "connected")
}

func TestDevicePollingResumesAfterARestart(t *testing.T) {
	e := newEnv(t)
	p := e.drivePolls(t)
	e.userConfig("u", nil)
	code := e.startDevice("u")["user_code"].(string)
	p.next(asAsked)
	e.restart() // the poller stops with the old backend

	p = e.drivePolls(t)
	if err := e.periodic(); err != nil {
		t.Fatal(err)
	}
	if err := e.fake.ApproveDevice(code); err != nil {
		t.Fatal(err)
	}
	p.next(asAsked)
	p.done()
	if !e.fake.Valid(e.token("u")) {
		t.Fatal("the token connected after a restart is not accepted by the provider")
	}
}

func TestDeviceNeedsADeviceEndpoint(t *testing.T) {
	e := newEnv(t)
	e.userConfig("u", map[string]any{"device_authorization_url": ""})
	_, err := e.do(logical.UpdateOperation, "device/u", nil)
	expectErr(t, "device/u without an endpoint", err, "needs client_id and device_authorization_url")
}
