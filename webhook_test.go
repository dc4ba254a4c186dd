package tokenbroker

// Webhooks (webhook.go, webhook_delivery.go): every event a receiver gets is
// verified with the Standard Webhooks Go library, deduplicated by
// webhook-id, and checked to come in order per connection.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

// newWebhookSecret is a Standard Webhooks secret of n random bytes.
func newWebhookSecret(n int) string {
	key := make([]byte, n)
	_, _ = rand.Read(key)
	return webhookSecretPrefix + base64.StdEncoding.EncodeToString(key)
}

// received is one event a receiver accepted, the first time it came.
type received struct {
	id, typ, timestamp string
	data               map[string]any
	body               string
}

// answer is how the receiver answers one request: a status, after a delay;
// drop closes the connection without an answer.
type answer struct {
	status int
	delay  time.Duration
	drop   bool
}

// receiver is an app's webhook endpoint on 127.0.0.1: it verifies every
// request with the published library, dedupes by webhook-id and checks the
// order of each connection's events.
type receiver struct {
	t   *testing.T
	srv *httptest.Server
	wh  *standardwebhooks.Webhook

	mu       sync.Mutex
	answer   func(n int) answer // n counts requests from 1
	requests int
	seen     map[string]bool
	events   []received
	lastID   map[string]string // connection -> the last new event's id
	problems []string
}

func newReceiver(t *testing.T, secret string) *receiver {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatalf("the library refuses the secret: %v", err)
	}
	r := &receiver{t: t, wh: wh, seen: map[string]bool{}, lastID: map[string]string{},
		answer: func(int) answer { return answer{status: http.StatusNoContent} }}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.requests++
	a := r.answer(r.requests)
	r.mu.Unlock()
	if a.drop {
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			conn.Close()
		}
		return
	}
	if a.delay > 0 {
		select {
		case <-time.After(a.delay):
		case <-req.Context().Done():
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.wh.Verify(body, req.Header); err != nil {
		r.problems = append(r.problems, "verify: "+err.Error())
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/json" || req.Method != http.MethodPost {
		r.problems = append(r.problems, fmt.Sprintf("%s with content type %q", req.Method, ct))
	}
	if a.status < 200 || a.status > 299 {
		w.WriteHeader(a.status)
		return
	}
	id := req.Header.Get("webhook-id")
	if !r.seen[id] { // dedupe by id: act once
		var ev struct {
			Type, Timestamp string
			Data            map[string]any
		}
		if err := json.Unmarshal(body, &ev); err != nil {
			r.problems = append(r.problems, "body: "+err.Error())
		}
		conn, _ := ev.Data["config"].(string)
		if last := r.lastID[conn]; last != "" && id <= last {
			r.problems = append(r.problems, fmt.Sprintf("%s: %s (%s) came after %s", conn, id, ev.Type, last))
		}
		r.seen[id], r.lastID[conn] = true, id
		r.events = append(r.events, received{id: id, typ: ev.Type, timestamp: ev.Timestamp, data: ev.Data, body: string(body)})
	}
	w.WriteHeader(a.status)
}

func (r *receiver) setAnswer(f func(n int) answer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answer = f
}

func (r *receiver) got() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.events...)
}

// check fails the test on any request that did not verify or came out of order.
func (r *receiver) check() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.problems) > 0 {
		r.t.Fatalf("receiver problems:\n%s", strings.Join(r.problems, "\n"))
	}
}

// types is the types received, in order, for connection name ("": all).
func (r *receiver) types(name string) []string {
	var out []string
	for _, ev := range r.got() {
		if name == "" || ev.data["config"] == name {
			out = append(out, ev.typ)
		}
	}
	return out
}

// hookEnv is an env whose mount sends webhooks to a receiver.
func hookEnv(t *testing.T, extra map[string]any) (*env, *receiver) {
	t.Helper()
	e := newEnv(t)
	secret := newWebhookSecret(32)
	r := newReceiver(t, secret)
	e.mustDo(logical.UpdateOperation, "settings", withFields(map[string]any{"webhook_url": r.srv.URL + "/hooks?team=a", "webhook_secret": secret}, extra))
	e.b.hooks.timeout = 300 * time.Millisecond
	e.b.hooks.start(e.b)
	return e, r
}

// waitEvents waits until the receiver holds n events, moving the clock by
// step each round (retries and backoff are on the backend's clock).
func waitEvents(t *testing.T, e *env, r *receiver, n int, step time.Duration) []received {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(r.got()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d events received, want %d: %v; status %v", len(r.got()), n, r.types(""), e.mustDo(logical.ReadOperation, "webhooks/status", nil).Data)
		}
		e.clock.Add(step)
		e.b.hooks.wakeUp()
		time.Sleep(10 * time.Millisecond)
	}
	r.check()
	return r.got()
}

// waitDrained waits until the outbox is empty (an event received while
// its sender timed out is sent again), moving the clock by step each round.
func waitDrained(t *testing.T, e *env, step time.Duration) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := e.mustDo(logical.ReadOperation, "webhooks/status", nil).Data
		if st["depth"] == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the outbox does not drain: %v", st)
		}
		e.clock.Add(step)
		e.b.hooks.wakeUp()
		time.Sleep(10 * time.Millisecond)
	}
}

// quiet waits a little and fails if the receiver got more than n events.
func quiet(t *testing.T, e *env, r *receiver, n int) {
	t.Helper()
	for range 20 {
		e.b.hooks.wakeUp()
		time.Sleep(10 * time.Millisecond)
	}
	if got := r.types(""); len(got) != n {
		t.Fatalf("received %v, want %d events", got, n)
	}
}

func TestWebhookSettings(t *testing.T) {
	e := newEnv(t)
	secret := newWebhookSecret(32)
	good := map[string]any{"webhook_url": "https://hooks.example.test/tb", "webhook_secret": secret}
	e.mustDo(logical.UpdateOperation, "settings", good)
	want := e.mustDo(logical.ReadOperation, "settings", nil).Data
	expectField(t, want, "webhook_url", "https://hooks.example.test/tb")
	expectField(t, want, "webhook_secret_set", true)
	expectField(t, want, "webhook_outbox_max", defaultWebhookOutboxMax)
	expectField(t, want, "webhook_failing_after", defaultWebhookFailingAfter)
	expect(t, "webhook_events", strings.Join(want["webhook_events"].([]string), ","), strings.Join(webhookEventTypes, ","))
	if _, ok := want["webhook_secret"]; ok {
		t.Fatal("a settings read shows webhook_secret")
	}

	cases := []struct {
		name string
		data map[string]any
		want string
	}{
		{"plain http to a remote host", map[string]any{"webhook_url": "http://hooks.example.test/tb"}, "https"},
		{"not a URL", map[string]any{"webhook_url": "::"}, "webhook_url"},
		{"ftp", map[string]any{"webhook_url": "ftp://hooks.example.test/"}, "scheme"},
		{"credentials in the URL", map[string]any{"webhook_url": "https://u:p@hooks.example.test/"}, "credentials"},
		{"a secret without the prefix", map[string]any{"webhook_secret": base64.StdEncoding.EncodeToString(make([]byte, 32))}, "whsec_"},
		{"a secret too short", map[string]any{"webhook_secret": newWebhookSecret(16)}, "24 to 64"},
		{"a secret too long", map[string]any{"webhook_secret": newWebhookSecret(65)}, "24 to 64"},
		{"a secret not base64", map[string]any{"webhook_secret": "whsec_%%%%"}, "whsec_"},
		{"an unknown event type", map[string]any{"webhook_events": "connection.created,user.deleted"}, "user.deleted"},
		{"no event type", map[string]any{"webhook_events": ""}, "at least one"},
		{"outbox of 0", map[string]any{"webhook_outbox_max": 0}, "webhook_outbox_max"},
		{"outbox too large", map[string]any{"webhook_outbox_max": maxWebhookOutboxMax + 1}, "webhook_outbox_max"},
		{"failing after 0", map[string]any{"webhook_failing_after": 0}, "webhook_failing_after"},
		{"a secret of the wrong type", map[string]any{"webhook_secret": 12345}, "webhook_secret"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, err := e.do(logical.UpdateOperation, "settings", c.data)
			if err == nil || resp == nil || !resp.IsError() {
				t.Fatalf("settings %v: %v %v, want a 400", c.data, resp, err)
			}
			expectErr(t, "settings", err, c.want)
			if s := fmt.Sprint(resp.Data); strings.Contains(s, secret[10:]) {
				t.Fatalf("the error shows the secret: %s", s)
			}
			got := e.mustDo(logical.ReadOperation, "settings", nil).Data
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("a refused write changed the settings: %v, want %v", got, want)
			}
		})
	}

	t.Run("a URL without a secret is refused", func(t *testing.T) {
		e := newEnv(t)
		_, err := e.do(logical.UpdateOperation, "settings", map[string]any{"webhook_url": "http://127.0.0.1:9/x"})
		expectErr(t, "settings", err, "needs webhook_secret")
	})
	t.Run("the secret is kept when the URL changes, and dropped when webhooks go off", func(t *testing.T) {
		e.mustDo(logical.UpdateOperation, "settings", map[string]any{"webhook_url": "http://localhost:8080/hooks", "webhook_events": "connection.needs_reauthorization, connection.deleted"})
		got := e.mustDo(logical.ReadOperation, "settings", nil).Data
		expectField(t, got, "webhook_secret_set", true)
		expect(t, "events", strings.Join(got["webhook_events"].([]string), ","), "connection.needs_reauthorization,connection.deleted")
		e.mustDo(logical.UpdateOperation, "settings", map[string]any{"webhook_url": ""})
		expectField(t, e.mustDo(logical.ReadOperation, "settings", nil).Data, "webhook_secret_set", false)
		_, err := e.do(logical.UpdateOperation, "settings", map[string]any{"webhook_url": "https://hooks.example.test/tb"})
		expectErr(t, "settings", err, "needs webhook_secret")
	})
	t.Run("memory keeps no secret", func(t *testing.T) {
		e.mustDo(logical.UpdateOperation, "settings", good)
		if s := e.b.loadedSettings.Load(); s == nil || s.WebhookSecret != "" {
			t.Fatalf("loaded settings = %+v, want no secret", s)
		}
		e.restart()
		e.mustDo(logical.ReadOperation, "settings", nil)
		if s := e.b.loadedSettings.Load(); s == nil || s.WebhookSecret != "" || !s.webhookSecretSet {
			t.Fatalf("loaded settings = %+v, want no secret, set", s)
		}
	})
}

// TestWebhookSignatureIsStandard: the signature is the library's.
func TestWebhookSignatureIsStandard(t *testing.T) {
	secret := newWebhookSecret(24)
	key, err := webhookKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	wh, _ := standardwebhooks.NewWebhook(secret)
	at := time.Unix(1_790_000_000, 0)
	body := []byte(`{"type":"connection.created"}`)
	want, _ := wh.Sign("msg_1", at, body)
	expect(t, "signature", signWebhook(key, "msg_1", at.Unix(), body), want)
}

// TestWebhookEvents: each change a user must hear of, from a user's own
// connection, reaches the receiver once, in order, with its data and no secret.
func TestWebhookEvents(t *testing.T) {
	e, r := hookEnv(t, nil)
	e.userApp("mail", nil)
	name := selfName("mail", entityA)
	base := map[string]any{"config": name, "app": "mail", "owner": entityA, "account_subject": accountA, "account_email": emailA}
	step := func(what string, do func(), typ string, data map[string]any) {
		t.Helper()
		n := len(r.got())
		do()
		got := waitEvents(t, e, r, n+1, 0)[n]
		expect(t, what+": type", got.typ, typ)
		if fmt.Sprint(got.data) != fmt.Sprint(withFields(base, data)) {
			t.Fatalf("%s: data = %v, want %v", what, got.data, withFields(base, data))
		}
		if _, err := time.Parse(time.RFC3339, got.timestamp); err != nil {
			t.Fatalf("%s: timestamp %q: %v", what, got.timestamp, err)
		}
		st := e.storedState(name)
		for _, secret := range []string{testClientSecret, "at_", "rt_", "code"} {
			if st != nil && (strings.Contains(got.body, st.AccessToken) && st.AccessToken != "" || strings.Contains(got.body, st.RefreshToken) && st.RefreshToken != "") {
				t.Fatalf("%s: the body holds a token: %s", what, got.body)
			}
			if secret == testClientSecret && strings.Contains(got.body, secret) {
				t.Fatalf("%s: the body holds the client secret", what)
			}
		}
	}

	step("first connection", func() { e.connectSelf(entityA, "mail", accountA, emailA) }, eventCreated, nil)
	step("connected again", func() { e.connectSelf(entityA, "mail", accountA, emailA) }, eventReconnected, nil)
	step("the user revoked the app", func() {
		e.fake.RefuseRefreshes(1, fakeprovider.RefuseInvalidGrant)
		e.clock.Add(2 * time.Hour)
		if _, err := e.as(entityA, logical.ReadOperation, "self/mail", nil); err == nil {
			t.Fatal("a read after the refusal succeeded")
		}
	}, eventNeedsReauth, map[string]any{"reason": reasonRevoked, "provider_error": "invalid_grant"})
	step("reconnected after the loss", func() { e.connectSelf(entityA, "mail", accountA, emailA) }, eventReconnected, nil)

	e.clock.Add(50 * time.Minute) // inside the refresh window, the token still serves
	step("renewals failing", func() {
		e.fake.Fail(10, fakeprovider.Fail500)
		for range defaultWebhookFailingAfter + 2 {
			if _, err := e.as(entityA, logical.ReadOperation, "self/mail", map[string]any{"min_ttl": "55m"}); err != nil {
				t.Fatalf("a read while renewals fail: %v", err)
			}
		}
	}, eventFailing, map[string]any{"reason": reasonFailing, "consecutive_failures": float64(defaultWebhookFailingAfter), "provider_error": "server_error"})
	step("renewals work again", func() {
		e.fake.ClearFailures()
		e.as(entityA, logical.ReadOperation, "self/mail", map[string]any{"min_ttl": "55m"})
	}, eventRecovered, nil)

	step("reconnected with a refresh token that expires", func() {
		e.fake.SetRefreshTokenLifetime(30*time.Minute, fakeprovider.RefreshTokenExpiresIn)
		e.connectSelf(entityA, "mail", accountA, emailA)
	}, eventReconnected, nil)
	step("the refresh token passes reauthorize_by", func() {
		e.clock.Add(31 * time.Minute) // the access token still serves: the periodic pass tells
		if err := e.periodic(); err != nil {
			t.Fatal(err)
		}
	}, eventNeedsReauth, map[string]any{"reason": reasonExpired})
	step("disconnected", func() {
		if _, err := e.as(entityA, logical.DeleteOperation, "self/mail", nil); err != nil {
			t.Fatal(err)
		}
	}, eventDeleted, nil)
	quiet(t, e, r, 9)
	want := []string{eventCreated, eventReconnected, eventNeedsReauth, eventReconnected, eventFailing, eventRecovered, eventReconnected, eventNeedsReauth, eventDeleted}
	expect(t, "events", strings.Join(r.types(""), " "), strings.Join(want, " "))
	if keys, _ := e.storage.List(context.Background(), outboxPrefix); len(keys) != 0 {
		t.Fatalf("outbox after delivery: %v", keys)
	}
}

// TestWebhookConfigEvents: a config without an app has the same events for
// its chain; an app deleted with its connections tells of each.
func TestWebhookConfigEvents(t *testing.T) {
	e, r := hookEnv(t, nil)
	e.seedConfig("seeded", fakeprovider.Echo360, map[string]any{"client_secret": nil})
	e.token("seeded")
	e.fake.RefuseRefreshes(1, fakeprovider.RefuseInvalidRequest)
	e.clock.Add(2 * time.Hour)
	if _, err := e.creds("seeded", nil); err == nil {
		t.Fatal("a read after the refusal succeeded")
	}
	got := waitEvents(t, e, r, 1, 0)
	expect(t, "type", got[0].typ, eventNeedsReauth)
	expect(t, "data", fmt.Sprint(got[0].data), fmt.Sprint(map[string]any{"config": "seeded", "reason": reasonRefused, "provider_error": "invalid_request"}))
	e.mustDo(logical.DeleteOperation, "config/seeded", nil)
	waitEvents(t, e, r, 2, 0)

	e.userApp("mail", nil)
	e.connectSelf(entityA, "mail", accountA, emailA)
	e.connectSelf(entityB, "mail", accountB, emailB)
	waitEvents(t, e, r, 4, 0)
	e.mustDo(logical.DeleteOperation, "app/mail", map[string]any{"delete_connections": true})
	waitEvents(t, e, r, 6, 0)
	quiet(t, e, r, 6)
	expect(t, "events", strings.Join(r.types(""), " "), strings.Join([]string{eventNeedsReauth, eventDeleted, eventCreated, eventCreated, eventDeleted, eventDeleted}, " "))
}

// TestWebhookOnlyEventsAsked: webhook_events filters; without webhooks
// nothing is written for them at all.
func TestWebhookOnlyEventsAsked(t *testing.T) {
	t.Run("filtered", func(t *testing.T) {
		e, r := hookEnv(t, map[string]any{"webhook_events": eventDeleted})
		e.userApp("mail", nil)
		e.connectSelf(entityA, "mail", accountA, emailA)
		e.as(entityA, logical.DeleteOperation, "self/mail", nil)
		waitEvents(t, e, r, 1, 0)
		quiet(t, e, r, 1)
		expect(t, "type", r.got()[0].typ, eventDeleted)
	})
	t.Run("off", func(t *testing.T) {
		e := newEnv(t)
		var writes []string
		var mu sync.Mutex
		f := func(entry *logical.StorageEntry) {
			mu.Lock()
			defer mu.Unlock()
			if strings.HasPrefix(entry.Key, webhookPrefix) || strings.Contains(string(entry.Value), "webhook") || strings.Contains(string(entry.Value), "notified") {
				writes = append(writes, entry.Key)
			}
		}
		e.storage.onPut.Store(&f)
		e.userApp("mail", nil)
		e.connectSelf(entityA, "mail", accountA, emailA)
		e.fake.RefuseRefreshes(1, fakeprovider.RefuseInvalidGrant)
		e.clock.Add(2 * time.Hour)
		e.as(entityA, logical.ReadOperation, "self/mail", nil)
		e.as(entityA, logical.DeleteOperation, "self/mail", nil)
		mu.Lock()
		defer mu.Unlock()
		if len(writes) > 0 {
			t.Fatalf("without webhooks, writes for them: %v", writes)
		}
	})
}

// TestWebhookReceiverFaults: whatever the receiver does (5xx, timeouts,
// slow answers, dropped connections, down then up), every event arrives,
// verified, in order per connection.
func TestWebhookReceiverFaults(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	faults := []struct {
		name string
		f    func(n int) answer
	}{
		{"5xx", func(n int) answer { return answer{status: []int{500, 502, 503, 204}[n%4]} }},
		{"timeouts", func(n int) answer {
			if n%3 != 0 {
				return answer{status: 200, delay: time.Second}
			}
			return answer{status: 200}
		}},
		{"slow but in time", func(n int) answer { return answer{status: 202, delay: 100 * time.Millisecond} }},
		{"dropped connections", func(n int) answer { return answer{drop: n%2 == 0, status: 200} }},
		{"redirects and 4xx", func(n int) answer { return answer{status: []int{302, 404, 410, 200}[n%4]} }},
		{"down then up", func(n int) answer { return answer{drop: n <= 12, status: 200} }},
		{"random", func(n int) answer {
			x := (seed + int64(n)*2654435761) % 5
			return []answer{{status: 500}, {drop: true}, {status: 200, delay: time.Second}, {status: 200}, {status: 201}}[x]
		}},
	}
	for _, c := range faults {
		t.Run(c.name, func(t *testing.T) {
			e, r := hookEnv(t, nil)
			r.setAnswer(c.f)
			e.userApp("mail", nil)
			for _, who := range []struct{ entity, sub, email string }{{entityA, accountA, emailA}, {entityB, accountB, emailB}} {
				e.connectSelf(who.entity, "mail", who.sub, who.email)
				e.connectSelf(who.entity, "mail", who.sub, who.email)
			}
			e.as(entityA, logical.DeleteOperation, "self/mail", nil)
			waitEvents(t, e, r, 5, 10*time.Minute)
			waitDrained(t, e, 10*time.Minute)
			for _, who := range []string{entityA, entityB} {
				want := []string{eventCreated, eventReconnected}
				if who == entityA {
					want = append(want, eventDeleted)
				}
				expect(t, who+"'s events", strings.Join(r.types(selfName("mail", who)), " "), strings.Join(want, " "))
			}
			st := e.mustDo(logical.ReadOperation, "webhooks/status", nil).Data
			expectField(t, st, "depth", 0)
			expectField(t, st, "dropped", uint64(0))
			if st["delivered"].(uint64) < 5 {
				t.Fatalf("status %v, want 5 delivered", st)
			}
		})
	}
}

// TestWebhookResumesAfterRestart: events pending when the process stops are
// delivered by the next one; an orphaned process or a standby sends nothing.
func TestWebhookResumesAfterRestart(t *testing.T) {
	e, r := hookEnv(t, nil)
	r.setAnswer(func(int) answer { return answer{status: 503} })
	e.userApp("mail", nil)
	e.connectSelf(entityA, "mail", accountA, emailA)
	e.connectSelf(entityB, "mail", accountB, emailB)
	deadline := time.Now().Add(10 * time.Second)
	for e.mustDo(logical.ReadOperation, "webhooks/status", nil).Data["depth"] != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the events were not queued: %v", e.mustDo(logical.ReadOperation, "webhooks/status", nil).Data)
		}
		e.b.hooks.wakeUp()
		time.Sleep(10 * time.Millisecond)
	}
	st := e.mustDo(logical.ReadOperation, "webhooks/status", nil).Data
	if st["last_error"] == "" || strings.Contains(fmt.Sprint(st), "whsec_") || strings.Contains(fmt.Sprint(st["last_error"]), "team=a") {
		t.Fatalf("status %v: want the last error, without the secret or the URL's query", st)
	}
	expectField(t, st, "oldest_event_at", testStart.Format(time.RFC3339))

	e.restart()
	e.b.hooks.timeout = 300 * time.Millisecond
	r.setAnswer(func(int) answer { return answer{status: 200} })

	t.Run("a standby sends nothing", func(t *testing.T) {
		e.standby()
		defer func() { e.b.System().(*logical.StaticSystemView).ReplicationStateVal = 0 }()
		if err := e.periodic(); err != nil {
			t.Fatal(err)
		}
		quiet(t, e, r, 0)
	})
	t.Run("an orphaned process sends nothing", func(t *testing.T) {
		VaultAlive = func() bool { return false }
		defer func() { VaultAlive = func() bool { return true } }()
		e.b.hooks.start(e.b)
		quiet(t, e, r, 0)
		e.b.hooks.stop()
	})
	if err := e.periodic(); err != nil { // the new active node resumes
		t.Fatal(err)
	}
	waitEvents(t, e, r, 2, time.Minute)
	expect(t, "events", strings.Join(r.types(""), " "), eventCreated+" "+eventCreated)
}

// TestWebhookOutboxBound: past webhook_outbox_max the oldest are dropped,
// counted and logged; events past 72 h too.
func TestWebhookOutboxBound(t *testing.T) {
	e, r := hookEnv(t, map[string]any{"webhook_outbox_max": 3})
	logs := captureLogs(e)
	r.setAnswer(func(int) answer { return answer{status: 500} })
	e.b.hooks.stop()
	e.userApp("mail", nil)
	for range 5 {
		e.connectSelf(entityA, "mail", accountA, emailA)
	}
	e.b.flushUnflushed(context.Background())
	e.b.deliverPass(context.Background())
	st := e.mustDo(logical.ReadOperation, "webhooks/status", nil).Data
	expectField(t, st, "depth", 3)
	expectField(t, st, "dropped", uint64(2))
	if !strings.Contains(logs.String(), "webhook outbox full") {
		t.Fatalf("no warning of the drop in the logs:\n%s", logs.String())
	}
	series := scrapeSeries(e)
	expect(t, "dropped series", series[`tokenbroker_webhook_deliveries_total{outcome="dropped"}`], 2.0)
	expect(t, "depth series", series[`tokenbroker_webhook_outbox_depth{}`], 3.0)

	e.clock.Add(webhookGiveUp + time.Minute)
	e.b.deliverPass(context.Background())
	st = e.mustDo(logical.ReadOperation, "webhooks/status", nil).Data
	expectField(t, st, "depth", 0)
	expectField(t, st, "dropped", uint64(5))
	if !strings.Contains(logs.String(), "not delivered within 72h") {
		t.Fatalf("no warning of giving up in the logs:\n%s", logs.String())
	}
	quiet(t, e, r, 0)
}

// TestWebhookStorageFailuresWhileRecording: a change and its event are both
// stored or the caller gets an error; an event whose change happened is
// never lost, and none is sent for a change that did not.
func TestWebhookStorageFailuresWhileRecording(t *testing.T) {
	failing := func(e *env, op, prefix string) func() {
		f := func(o, key string) error {
			if o == op && strings.HasPrefix(key, prefix) {
				return errors.New("injected: storage down for " + key)
			}
			return nil
		}
		e.storage.fail.Store(&f)
		return func() { e.storage.fail.Store(nil) }
	}
	cases := []struct {
		name string
		// run makes the change with storage failing, then lets storage
		// work again; it reports whether the change happened.
		run  func(t *testing.T, e *env) bool
		want []string
	}{
		{"the state write fails on connect: kept in memory, written later", func(t *testing.T, e *env) bool {
			heal := failing(e, "put", tokenPrefix)
			code, _ := e.connectSelf(entityA, "mail", accountA, emailA)
			heal()
			if code == 200 {
				t.Fatalf("connect with storage down answered %d", code)
			}
			e.token(selfName("mail", entityA)) // the next renewal writes the state
			return true
		}, []string{eventCreated}},
		{"the outbox write fails: the event waits in the state", func(t *testing.T, e *env) bool {
			heal := failing(e, "put", outboxPrefix)
			e.connectSelf(entityA, "mail", accountA, emailA)
			time.Sleep(50 * time.Millisecond)
			e.b.hooks.wakeUp()
			time.Sleep(50 * time.Millisecond)
			heal()
			return true
		}, []string{eventCreated}},
		{"the tombstone write fails: nothing is deleted", func(t *testing.T, e *env) bool {
			e.connectSelf(entityA, "mail", accountA, emailA)
			heal := failing(e, "put", tombstonePrefix)
			_, err := e.as(entityA, logical.DeleteOperation, "self/mail", nil)
			heal()
			if err == nil {
				t.Fatal("a disconnect without its event succeeded")
			}
			return false
		}, []string{eventCreated}},
		{"the config delete fails: no connection.deleted", func(t *testing.T, e *env) bool {
			e.connectSelf(entityA, "mail", accountA, emailA)
			heal := failing(e, "delete", configPrefix)
			_, err := e.as(entityA, logical.DeleteOperation, "self/mail", nil)
			heal()
			if err == nil {
				t.Fatal("a failed delete succeeded")
			}
			if err := e.periodic(); err != nil {
				t.Fatal(err)
			}
			return false
		}, []string{eventCreated}},
		{"the outbox write fails after the delete: queued later", func(t *testing.T, e *env) bool {
			e.connectSelf(entityA, "mail", accountA, emailA)
			waitEventsQuietly(e)
			heal := failing(e, "put", outboxPrefix)
			if _, err := e.as(entityA, logical.DeleteOperation, "self/mail", nil); err != nil {
				t.Fatalf("the delete happened but answered %v", err)
			}
			heal()
			if err := e.periodic(); err != nil {
				t.Fatal(err)
			}
			return true
		}, []string{eventCreated, eventDeleted}},
		{"deleted then created again before the tombstone is queued", func(t *testing.T, e *env) bool {
			e.connectSelf(entityA, "mail", accountA, emailA)
			waitEventsQuietly(e)
			heal := failing(e, "put", outboxPrefix)
			e.as(entityA, logical.DeleteOperation, "self/mail", nil)
			heal()
			e.connectSelf(entityA, "mail", accountA, emailA)
			if err := e.periodic(); err != nil {
				t.Fatal(err)
			}
			return true
		}, []string{eventCreated, eventDeleted, eventCreated}},
		{"a restart before the events are queued", func(t *testing.T, e *env) bool {
			e.b.hooks.stop()
			e.connectSelf(entityA, "mail", accountA, emailA)
			e.restart()
			e.b.hooks.timeout = 300 * time.Millisecond
			if err := e.periodic(); err != nil {
				t.Fatal(err)
			}
			return true
		}, []string{eventCreated}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, r := hookEnv(t, nil)
			e.userApp("mail", nil)
			c.run(t, e)
			waitEvents(t, e, r, len(c.want), time.Minute)
			quiet(t, e, r, len(c.want))
			expect(t, "events", strings.Join(r.types(""), " "), strings.Join(c.want, " "))
			if keys, _ := e.storage.List(context.Background(), tombstonePrefix); len(keys) != 0 {
				t.Fatalf("tombstones left: %v", keys)
			}
		})
	}
}

// waitEventsQuietly lets the worker queue and send what is recorded.
func waitEventsQuietly(e *env) {
	for range 30 {
		e.b.hooks.wakeUp()
		time.Sleep(10 * time.Millisecond)
	}
}

// captureLogs sends e's backend logs to a buffer too.
func captureLogs(e *env) *syncBuffer {
	buf := &syncBuffer{}
	e.b.setLogger(hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: buf}))
	return buf
}
