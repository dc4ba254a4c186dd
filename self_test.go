package tokenbroker

// self/<app>/...: each Vault user connects and reads their own account's
// token, bound to the entity that started the connection (path_self.go,
// identity.go).

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

// The users of these tests: Vault entities, and their accounts at the fake.
const (
	entityA, entityB   = "6a1e2c3d-0000-4000-8000-00000000000a", "6a1e2c3d-0000-4000-8000-00000000000b"
	accountA, accountB = "sub-alice", "sub-bob"
	emailA, emailB     = "alice@example.test", "bob@example.test"
)

// userApp writes app/<name>: the fake's OAuth client with a user's
// authorization, its userinfo and revocation endpoints; extra overrides.
func (e *env) userApp(name string, extra map[string]any) {
	e.t.Helper()
	base := e.fake.URL()
	e.app(name, fakeprovider.OAuth2, withFields(map[string]any{
		"auth_url":                 base + fakeprovider.PathAuthorize,
		"device_authorization_url": base + fakeprovider.PathDeviceAuthorization,
		"redirect_uri":             testRedirect,
		"userinfo_url":             base + fakeprovider.PathUserinfo,
		"revocation_url":           base + fakeprovider.PathRevoke,
		"scopes":                   "read",
	}, extra))
}

// as does op on path with a token of entity ("" for a token without one).
func (e *env) as(entity string, op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := e.b.HandleRequest(ctx, &logical.Request{Operation: op, Path: path, Data: data, Storage: e.storage,
		EntityID: entity, DisplayName: "userpass-" + entity})
	if err == nil && resp != nil && resp.IsError() {
		err = resp.Error()
	}
	return resp, err
}

// connectSelf runs entity's whole browser journey for app with the fake's
// account sub approving, and returns the callback page.
func (e *env) connectSelf(entity, app, sub, email string) (int, string) {
	e.t.Helper()
	resp, err := e.as(entity, logical.UpdateOperation, "self/"+app+"/authorize", nil)
	if err != nil {
		e.t.Fatalf("self/%s/authorize as %s: %v", app, entity, err)
	}
	e.fake.SetAccount(sub, email)
	return e.callback(e.approve(resp.Data["url"].(string)))
}

// codeOf is the HTTP status of err (200 without one).
func codeOf(err error) int {
	var coded logical.HTTPCodedError
	switch {
	case err == nil:
		return http.StatusOK
	case errors.As(err, &coded):
		return coded.Code()
	}
	return http.StatusBadRequest // a logical.ErrorResponse
}

// TestSelfConnectionsAreTheirOwners: each user connects their own account
// and reads only their own token; nothing under self/ reaches another
// user's connection, and a token without an entity gets a clear 400.
func TestSelfConnectionsAreTheirOwners(t *testing.T) {
	e := newEnv(t)
	e.userApp("mail", nil)
	for _, u := range []struct{ entity, sub, email string }{{entityA, accountA, emailA}, {entityB, accountB, emailB}} {
		status, page := e.connectSelf(u.entity, "mail", u.sub, u.email)
		if status != 200 || !strings.Contains(page, "connected to the account "+u.email) {
			t.Fatalf("callback for %s = %d %q, want 200 naming the account %s", u.entity, status, page, u.email)
		}
	}
	for _, u := range []struct{ entity, sub, email string }{{entityA, accountA, emailA}, {entityB, accountB, emailB}} {
		resp, err := e.as(u.entity, logical.ReadOperation, "self/mail", nil)
		if err != nil {
			t.Fatalf("self/mail as %s: %v", u.entity, err)
		}
		if sub, _ := e.fake.AccountOf(resp.Data["access_token"].(string)); sub != u.sub {
			t.Errorf("self/mail as %s: the provider says the token is %q's, want %q's", u.entity, sub, u.sub)
		}
		status, err := e.as(u.entity, logical.ReadOperation, "self/mail/status", nil)
		if err != nil {
			t.Fatal(err)
		}
		expectField(t, status.Data, "owner", u.entity)
		expectField(t, status.Data, "account_email", u.email)
		expectField(t, status.Data, "account_subject", u.sub)
		expectField(t, status.Data, "app", "mail")
	}

	// B has no way to A's connection through self/: every path is B's own.
	e.mustDo(logical.DeleteOperation, "config/"+selfName("mail", entityB), nil) // B disconnected (by an operator)
	for _, c := range []struct {
		op   logical.Operation
		path string
	}{{logical.ReadOperation, "self/mail"}, {logical.ReadOperation, "self/mail/status"}, {logical.DeleteOperation, "self/mail"}} {
		_, err := e.as(entityB, c.op, c.path, nil)
		if codeOf(err) != http.StatusNotFound || !strings.Contains(err.Error(), `you have no connection of app "mail"`) {
			t.Errorf("%s %s as B after B's connection is gone: %v, want 404 you have no connection", c.op, c.path, err)
		}
	}
	if _, err := e.as(entityA, logical.ReadOperation, "self/mail", nil); err != nil {
		t.Errorf("A's connection after B's attempts: %v", err)
	}

	// A token without an entity owns nothing.
	for _, c := range []struct {
		op   logical.Operation
		path string
	}{{logical.ReadOperation, "self/mail"}, {logical.ReadOperation, "self/mail/status"}, {logical.DeleteOperation, "self/mail"},
		{logical.UpdateOperation, "self/mail/authorize"}, {logical.UpdateOperation, "self/mail/device"}} {
		_, err := e.as("", c.op, c.path, nil)
		if codeOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "this token has no entity") {
			t.Errorf("%s %s without an entity: %v, want 400 no entity", c.op, c.path, err)
		}
	}

	// Operators reach any connection by its name.
	if _, err := e.creds(selfName("mail", entityA), nil); err != nil {
		t.Errorf("creds/%s: %v", selfName("mail", entityA), err)
	}
	list := e.connections("mail", nil)
	expect(t, "connections", len(list.Data["keys"].([]string)), 1)
	info := list.Data["key_info"].(map[string]any)[selfName("mail", entityA)].(map[string]any)
	expectField(t, info, "owner", entityA)
	expectField(t, info, "account_email", emailA)
}

// TestSelfForwardedLink: a link A started and B approved connects B's
// account to A's connection, bound to A and shown as B's; under
// identity_match=email it is refused, nothing is stored, and the token the
// provider issued is revoked.
func TestSelfForwardedLink(t *testing.T) {
	e := newEnv(t)
	e.b.System().(*logical.StaticSystemView).EntityVal = &logical.Entity{ID: entityA, Name: "alice",
		Aliases: []*logical.Alias{{MountType: "userpass", Name: "alice", Metadata: map[string]string{"email": emailA}}}}
	e.userApp("open", nil)
	e.userApp("strict", map[string]any{"identity_match": "email"})

	status, page := e.connectSelf(entityA, "open", accountB, emailB) // B approves A's link
	if status != 200 {
		t.Fatalf("callback = %d %q, want 200", status, page)
	}
	st, err := e.as(entityA, logical.ReadOperation, "self/open/status", nil)
	if err != nil {
		t.Fatal(err)
	}
	expectField(t, st.Data, "owner", entityA)
	expectField(t, st.Data, "account_email", emailB)

	before := e.fake.Revocations()
	status, page = e.connectSelf(entityA, "strict", accountB, emailB)
	if status != http.StatusForbidden || !strings.Contains(page, "is not the Vault user") || !strings.Contains(page, emailB) {
		t.Fatalf("forwarded link under identity_match = %d %q, want 403 naming the account and the mismatch", status, page)
	}
	if stored, _ := configEntries.load(t.Context(), e.storage, selfName("strict", entityA)); stored != nil {
		t.Errorf("a refused connection was stored: %+v", stored)
	}
	if st, _ := loadState(t.Context(), e.storage, selfName("strict", entityA)); st != nil {
		t.Errorf("a refused connection stored a token state")
	}
	expect(t, "revocations of the refused account's token", e.fake.Revocations(), before+1)

	status, page = e.connectSelf(entityA, "strict", accountA, emailA) // A's own account
	if status != 200 {
		t.Fatalf("A's own account under identity_match = %d %q, want 200", status, page)
	}
}

// TestSelfDisconnect revokes the refresh token at the provider, then deletes
// the connection; a failed revocation keeps it.
func TestSelfDisconnect(t *testing.T) {
	e := newEnv(t)
	e.userApp("mail", nil)
	e.connectSelf(entityA, "mail", accountA, emailA)
	name := selfName("mail", entityA)
	rt := e.storedState(name).RefreshToken

	e.fake.Fail(1, fakeprovider.Fail500)
	_, err := e.as(entityA, logical.DeleteOperation, "self/mail", nil)
	if codeOf(err) != http.StatusBadGateway || !strings.Contains(err.Error(), "the connection is kept") {
		t.Fatalf("disconnect while the provider fails: %v, want 502 keeping the connection", err)
	}
	if e.storedState(name).RefreshToken != rt {
		t.Fatal("a failed disconnect changed the chain")
	}

	resp, err := e.as(entityA, logical.DeleteOperation, "self/mail", nil)
	if err != nil {
		t.Fatal(err)
	}
	expectField(t, resp.Data, "revoked", true)
	if !e.fake.RefreshTokenRevoked(rt) {
		t.Error("the provider did not revoke the connection's refresh token")
	}
	if stored, _ := configEntries.load(t.Context(), e.storage, name); stored != nil {
		t.Errorf("the connection is still stored after a disconnect")
	}
	expect(t, "connections", len(e.connections("mail", nil).Data), 0)
}

// TestSelfDeviceAndPastedCode: the device flow and a pasted code make the
// caller's own connection too; a state issued for another connection is refused.
func TestSelfDeviceAndPastedCode(t *testing.T) {
	e := newEnv(t)
	p := e.drivePolls(t)
	e.userApp("mail", nil)
	resp, err := e.as(entityA, logical.UpdateOperation, "self/mail/device", nil)
	if err != nil {
		t.Fatal(err)
	}
	e.fake.SetAccount(accountA, emailA)
	if err := e.fake.ApproveDevice(resp.Data["user_code"].(string)); err != nil {
		t.Fatal(err)
	}
	p.next(asAsked)
	p.done()
	st, err := e.as(entityA, logical.ReadOperation, "self/mail/status", nil)
	if err != nil {
		t.Fatal(err)
	}
	expectField(t, st.Data, "owner", entityA)
	expectField(t, st.Data, "account_email", emailA)

	resp, err = e.as(entityB, logical.UpdateOperation, "self/mail/authorize", nil)
	if err != nil {
		t.Fatal(err)
	}
	e.fake.SetAccount(accountB, emailB)
	back, err := e.fake.Authorize(resp.Data["url"].(string))
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(back)
	code, state := u.Query().Get("code"), u.Query().Get("state")
	_, err = e.as(entityA, logical.UpdateOperation, "self/mail/code", map[string]any{"code": code, "state": state})
	expectErr(t, "B's code pasted by A", err, "this state was not issued for")
	if _, err := e.as(entityB, logical.UpdateOperation, "self/mail/code", map[string]any{"code": code, "state": state}); err != nil {
		t.Fatal(err)
	}
	tok, err := e.as(entityB, logical.ReadOperation, "self/mail", nil)
	if err != nil {
		t.Fatal(err)
	}
	if sub, _ := e.fake.AccountOf(tok.Data["access_token"].(string)); sub != accountB {
		t.Errorf("B's token belongs to %q, want %q", sub, accountB)
	}
}

// TestSelfNameHeldByAnotherConfig: a config an operator made under a
// user's connection name is not the user's: self/ refuses to take it over.
func TestSelfNameHeldByAnotherConfig(t *testing.T) {
	e := newEnv(t)
	e.userApp("mail", nil)
	e.mustDo(logical.CreateOperation, "config/"+selfName("mail", entityA), map[string]any{"app": "mail"})
	_, err := e.as(entityA, logical.UpdateOperation, "self/mail/authorize", nil)
	if codeOf(err) != http.StatusConflict {
		t.Fatalf("self/mail/authorize over an operator's connection: %v, want 409", err)
	}
	_, err = e.as(entityA, logical.ReadOperation, "self/mail", nil)
	if codeOf(err) != http.StatusNotFound {
		t.Fatalf("self/mail over an operator's connection: %v, want 404", err)
	}
}

// TestSelfAppDeletedWhileConnecting: an app deleted between a user's
// authorize and the provider's redirect gets no connection.
func TestSelfAppDeletedWhileConnecting(t *testing.T) {
	e := newEnv(t)
	e.userApp("mail", nil)
	resp, err := e.as(entityA, logical.UpdateOperation, "self/mail/authorize", nil)
	if err != nil {
		t.Fatal(err)
	}
	e.mustDo(logical.DeleteOperation, "app/mail", nil)
	status, page := e.callback(e.approve(resp.Data["url"].(string)))
	if status != http.StatusNotFound || !strings.Contains(page, `no app named &#34;mail&#34;`) {
		t.Fatalf("callback after the app was deleted = %d %q, want 404 no app", status, page)
	}
	if stored, _ := configEntries.load(t.Context(), e.storage, selfName("mail", entityA)); stored != nil {
		t.Errorf("a connection of a deleted app was stored: %+v", stored)
	}
}

// TestReconnectRevokesTheReplacedChain: connecting again replaces the chain
// and, once the new one is stored, revokes the old refresh token at the
// provider, so no grant is left live without a holder.
func TestReconnectRevokesTheReplacedChain(t *testing.T) {
	e := newEnv(t)
	e.userApp("mail", nil)
	e.connectSelf(entityA, "mail", accountA, emailA)
	name := selfName("mail", entityA)
	old := e.storedState(name).RefreshToken
	e.connectSelf(entityA, "mail", accountA, emailA)
	if now := e.storedState(name).RefreshToken; now == old || now == "" {
		t.Fatalf("refresh token after reconnecting = %q, want a new one", now)
	}
	if !e.fake.RefreshTokenRevoked(old) {
		t.Error("the replaced chain's refresh token is still live at the provider")
	}
}
