//go:build e2e

package e2e

// Signed webhooks from the durable outbox, in a real Vault: a receiver on
// loopback verifies every delivery with the Standard Webhooks Go library,
// dedupes by webhook-id and checks each connection's events arrive in order;
// it is down for a while and every event still arrives; in a 3-node raft
// cluster whose active node is killed while events are pending, the new
// active node delivers them.

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

// hookEvent is one delivered event's body.
type hookEvent struct {
	ID        string         `json:"-"` // webhook-id
	Type      string         `json:"type"`
	Timestamp string         `json:"timestamp"`
	Data      map[string]any `json:"data"`
}

// receiver is an app's webhook endpoint on loopback.
type receiver struct {
	t   *testing.T
	wh  *standardwebhooks.Webhook
	srv *httptest.Server

	mu       sync.Mutex
	down     bool
	seen     map[string]bool // webhook-ids delivered, for deduplication
	events   []hookEvent     // in first-arrival order, deduplicated
	attempts int             // every request, refused or not
	dupes    int             // deliveries of an id already seen
	forged   []string        // what failed verification
}

// newWebhookSecret is a Standard Webhooks secret: whsec_ and 32 random bytes, base64.
func newWebhookSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

func startReceiver(t *testing.T, secret string) *receiver {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{t: t, wh: wh, seen: map[string]bool{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts++
	if r.down {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	if err := r.wh.Verify(body, req.Header); err != nil {
		r.forged = append(r.forged, fmt.Sprintf("%v: %s", err, body))
		http.Error(w, "bad signature", http.StatusBadRequest)
		return
	}
	id := req.Header.Get("webhook-id")
	if r.seen[id] {
		r.dupes++
		w.WriteHeader(http.StatusNoContent) // delivered before: acknowledge, act once
		return
	}
	var ev hookEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		r.forged = append(r.forged, fmt.Sprintf("not JSON: %s", body))
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	ev.ID = id
	r.seen[id] = true
	r.events = append(r.events, ev)
	w.WriteHeader(http.StatusNoContent)
}

// setDown makes the receiver answer 503 to everything (true) or take deliveries.
func (r *receiver) setDown(down bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = down
}

// of returns the events delivered for connection (the config's name), in order.
func (r *receiver) of(connection string) []hookEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []hookEvent
	for _, ev := range r.events {
		if ev.Data["config"] == connection || ev.Data["connection"] == connection {
			out = append(out, ev)
		}
	}
	return out
}

// types lists the types of evs.
func types(evs []hookEvent) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Type
	}
	return out
}

// waitTypes waits until connection's delivered events are exactly want, in order.
func (r *receiver) waitTypes(t *testing.T, connection string, timeout time.Duration, want ...string) []hookEvent {
	t.Helper()
	var got []hookEvent
	eventually(t, timeout, 250*time.Millisecond, fmt.Sprintf("events %v for %s", want, connection), func() bool {
		got = r.of(connection)
		return slices.Equal(types(got), want)
	})
	return got
}

// check fails the test for any delivery that did not verify.
func (r *receiver) check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.forged) > 0 {
		t.Errorf("deliveries that failed Standard Webhooks verification: %q", r.forged)
	}
}

// webhookStatus reads tokenbroker/webhooks/status through v.
func webhookStatus(v *Vault) map[string]any {
	data, _ := v.JSON("read", "-format=json", "tokenbroker/webhooks/status")["data"].(map[string]any)
	return data
}

// depth is the outbox depth status shows (-1 when unreadable).
func depth(v *Vault) int {
	d, ok := webhookStatus(v)["depth"].(float64)
	if !ok {
		return -1
	}
	return int(d)
}

// TestWebhooks: a user's connection made through the browser flow sends
// connection.created; the user ending the grant at the provider sends
// connection.needs_reauthorization with the reason and the provider's error;
// a disconnect sends connection.deleted. The receiver is down in between:
// the events wait in the outbox (status shows them) and all arrive once it is
// up, verified, once per webhook-id, in order. No event carries a secret.
func TestWebhooks(t *testing.T) {
	v := StartVaultWithPlugin(t)
	// The provider: the fake over loopback http with a consent page a
	// person (here, headless Chromium) approves.
	fake := fakeprovider.New(fakeprovider.Options{ConsentPage: true, Logf: t.Logf})
	if err := fake.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	fake.AddClient(fakeClientID, fakeClientSecret)
	browser := StartBrowser(t)
	secret := newWebhookSecret(t)
	recv := startReceiver(t, secret)
	v.Must("write", "tokenbroker/settings", "webhook_url="+recv.srv.URL, "webhook_secret="+secret)
	if st := webhookStatus(v); st["enabled"] != true || st["webhook_secret"] != nil {
		t.Fatalf("webhooks/status = %v, want enabled and no secret", st)
	}

	u := fake.URL()
	v.Must("write", "tokenbroker/app/mail", "provider=oauth2", "token_url="+u+fakeprovider.PathOAuth2Token,
		"client_id="+fakeClientID, "client_secret="+fakeClientSecret,
		"auth_url="+u+fakeprovider.PathAuthorize, "redirect_uri="+v.Addr+"/v1/tokenbroker/callback",
		"userinfo_url="+u+fakeprovider.PathUserinfo, "revocation_url="+u+fakeprovider.PathRevoke, "scopes=read")
	policy := v.WriteFile("self.hcl", `path "tokenbroker/self/*" { capabilities = ["read", "update", "delete"] }`)
	v.Must("policy", "write", "tokenbroker-self", policy)
	v.Must("auth", "enable", "userpass")
	password := randHex(t, 12)
	v.Must("write", "auth/userpass/users/alice", "password="+password, "token_policies=tokenbroker-self")
	auth, _ := v.JSON("write", "-format=json", "auth/userpass/login/alice", "password="+password)["auth"].(map[string]any)
	token, _ := auth["client_token"].(string)
	entity, _ := auth["entity_id"].(string)
	if token == "" || entity == "" {
		t.Fatalf("userpass login = %v, want a token with an entity", auth)
	}
	conn := "mail." + entity

	// Alice connects in the browser: the provider's consent page, Approve,
	// and the redirect to Vault's callback.
	start := v.RunAs(token, "write", "-format=json", "-f", "tokenbroker/self/mail/authorize")
	if start.Code != 0 {
		t.Fatalf("self/mail/authorize: %v", start)
	}
	var started struct {
		Data struct{ URL string } `json:"data"`
	}
	if err := json.Unmarshal([]byte(start.Stdout), &started); err != nil || started.Data.URL == "" {
		t.Fatalf("self/mail/authorize answered %s", start.Stdout)
	}
	browser.Do("approve at the provider's consent page",
		chromedp.Navigate(started.Data.URL),
		chromedp.WaitVisible(chromedp.CSS(`button[value="approve"]`)),
		chromedp.Click(chromedp.CSS(`button[value="approve"]`)))
	_, _, message := browser.page("Vault's callback page")
	if !strings.Contains(message, conn+" connected") {
		t.Fatalf("callback page says %q, want %s connected", message, conn)
	}
	created := recv.waitTypes(t, conn, time.Minute, "connection.created")[0]
	for key, want := range map[string]any{"config": conn, "app": "mail", "owner": entity, "account_email": fakeprovider.DefaultAccountEmail} {
		if created.Data[key] != want {
			t.Errorf("connection.created data[%s] = %v, want %v (data %v)", key, created.Data[key], want, created.Data)
		}
	}

	// The receiver goes down; the user ends the app's access at the
	// provider, which revokes the grant: the next renewal is refused
	// (invalid_grant) and the chain, which cannot mint, needs its user.
	recv.setDown(true)
	if n := fake.RevokeGrantsOf(fakeprovider.DefaultAccountSubject); n != 1 {
		t.Fatalf("the provider revoked %d grants of the account, want 1", n)
	}
	v.Must("delete", "tokenbroker/creds/"+conn) // evict: the next read renews
	if r := v.RunAs(token, "read", "tokenbroker/self/mail"); r.Code == 0 {
		t.Fatalf("self/mail after the provider ended the grant: %v, want a failure", r)
	}
	if r := v.RunAs(token, "delete", "tokenbroker/self/mail"); r.Code != 0 {
		t.Fatalf("disconnect: %v", r)
	}
	eventually(t, 30*time.Second, 250*time.Millisecond, "two events waiting in the outbox", func() bool { return depth(v) == 2 })
	if st := webhookStatus(v); st["last_error"] == "" || st["oldest_event_at"] == "" {
		t.Errorf("webhooks/status with the receiver down = %v, want its last error and the oldest event's time", st)
	}

	recv.setDown(false)
	evs := recv.waitTypes(t, conn, 3*time.Minute, "connection.created", "connection.needs_reauthorization", "connection.deleted")
	needs := evs[1]
	if needs.Data["provider_error"] != "invalid_grant" || needs.Data["reason"] == "" {
		t.Errorf("connection.needs_reauthorization data = %v, want the reason and provider_error invalid_grant", needs.Data)
	}
	eventually(t, 30*time.Second, 250*time.Millisecond, "an empty outbox", func() bool { return depth(v) == 0 })
	recv.check(t)
	recv.mu.Lock()
	t.Logf("receiver: %d requests, %d events, %d duplicates acknowledged", recv.attempts, len(recv.events), recv.dupes)
	for _, ev := range recv.events {
		raw, _ := json.Marshal(ev)
		for _, secretish := range []string{secret, fakeClientSecret, password, token} {
			if strings.Contains(string(raw), secretish) {
				t.Errorf("event %s carries a secret: %s", ev.Type, raw)
			}
		}
	}
	recv.mu.Unlock()
}

// TestWebhooksSurviveFailover: events recorded while the receiver is down
// are in the replicated outbox; the active node is killed (SIGKILL, with its
// plugin process), and the node that takes over delivers them, in order.
func TestWebhooksSurviveFailover(t *testing.T) {
	needBinaries(t)
	fake := StartFake(t, 0)
	secret := newWebhookSecret(t)
	recv := startReceiver(t, secret)
	recv.setDown(true)
	c := StartCluster(t, 3)
	leader := c.Active()
	if leader == nil {
		t.Fatal("no active node after start")
	}
	leader.EnablePlugin()
	leader.Must("write", "tokenbroker/settings", "webhook_url="+recv.srv.URL, "webhook_secret="+secret)

	// A config's chain from a seed, which cannot mint: the provider refuses
	// its refresh token, so it needs an operator; then it is deleted.
	u := fake.URL()
	leader.WriteConfig("seed", "provider=apivideo", "token_url="+u+"/auth/api-key", "refresh_url="+u+"/auth/refresh",
		"refresh_token="+fake.SeedRefreshToken(fakeprovider.APIVideo, fakeAPIKey), "ca_pem=@"+fake.CAFile)
	fake.RefuseRefreshes(1, fakeprovider.RefuseDefault)
	if r := leader.Run("read", "tokenbroker/creds/seed"); r.Code == 0 {
		t.Fatalf("creds/seed with its refresh token refused: %v, want a failure", r)
	}
	leader.Must("delete", "tokenbroker/config/seed")
	eventually(t, 30*time.Second, 250*time.Millisecond, "two events waiting in the outbox", func() bool { return depth(leader.Vault) == 2 })

	leader.Kill()
	next, at := c.WaitActive(leader, 90*time.Second)
	t.Logf("%s active %s after the kill", next.ID, time.Since(at).Round(time.Millisecond))
	recv.setDown(false)
	// The new active node resumes delivery by its periodic pass (about once a minute).
	recv.waitTypes(t, "seed", 4*time.Minute, "connection.needs_reauthorization", "connection.deleted")
	eventually(t, 30*time.Second, 250*time.Millisecond, "an empty outbox on the new active node", func() bool { return depth(next.Vault) == 0 })
	recv.check(t)
	if err := leader.Start(); err != nil {
		t.Logf("restarting %s: %v", leader.ID, err)
	}
}
