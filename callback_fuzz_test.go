package tokenbroker

// FuzzCallback sends hostile answers to the unauthenticated callback, as a
// GET query or a form POST: whatever the state, code and error fields hold,
// the callback answers a page, never panics, never shows a secret, and for
// a state that matches no pending authorization writes nothing and creates
// nothing for the name.

import (
	"context"
	"strings"
	"testing"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
)

// What the fuzzed state is.
const (
	fuzzStateAsIs      = iota // the fuzzed string: no pending authorization's
	fuzzStatePending          // the state of a pending authorization of u
	fuzzStateOtherName        // the pending state's random part, the fuzzed string as the name
	fuzzStateKinds
)

func FuzzCallback(f *testing.F) {
	random, _, _ := strings.Cut(newAuthState("x"), ".")
	for _, seed := range []struct {
		kind                          uint8
		post                          bool
		state, code, errCode, errDesc string
	}{
		{fuzzStateAsIs, false, random + ".u", "code_1", "", ""},
		{fuzzStateAsIs, true, random + ".nobody", "code_1", "", ""},
		{fuzzStateAsIs, false, "<script>alert(1)</script>.u", "", "access_denied", "<b>no</b>"},
		{fuzzStateAsIs, true, ".", "", "", ""},
		{fuzzStateAsIs, false, "a.b.c", "\x00\r\n", "\x1b[31m", strings.Repeat("é", 300)},
		{fuzzStatePending, false, "", "code_unknown", "", ""},
		{fuzzStatePending, true, "", "", "access_denied", "The user said no\r\n<script>"},
		{fuzzStatePending, true, "", "", "", ""},
		{fuzzStatePending, false, "", testClientSecret, "", ""},
		{fuzzStateOtherName, true, "nobody", "code_1", "", ""},
		{fuzzStateOtherName, false, "u/../u", "code_1", "", ""},
		{fuzzStateOtherName, false, "u", "code_1", "", ""},
	} {
		f.Add(seed.kind, seed.post, seed.state, seed.code, seed.errCode, seed.errDesc)
	}

	e := newEnv(f)
	e.b.setLogger(hclog.NewNullLogger())
	e.userConfig("u", map[string]any{"client_secret": testClientSecret})
	store := &writeCountingStorage{Storage: e.storage}
	ctx := context.Background()

	f.Fuzz(func(t *testing.T, kind uint8, post bool, state, code, errCode, errDesc string) {
		e.t = t
		kind %= fuzzStateKinds
		var pending pendingCode
		var issued string // the pending authorization's state, when one was started
		if kind != fuzzStateAsIs {
			_, issued = e.authorize("u")
			if _, err := codeEntries.loadInto(ctx, e.storage, "u", &pending); err != nil {
				t.Fatal(err)
			}
		}
		switch kind {
		case fuzzStatePending:
			state = issued
		case fuzzStateOtherName:
			r, _, _ := strings.Cut(issued, ".")
			if state = r + "." + state; state == issued {
				kind = fuzzStatePending // the fuzzed name is u's own
			}
		}
		chain, names := e.storedState("u"), entryCount(e.b)
		store.writes.Store(0)

		resp, err := e.b.HandleRequest(ctx, callbackRequest(store, post, map[string]any{
			"state": state, "code": code, "error": errCode, "error_description": errDesc}))
		if err != nil {
			t.Fatalf("callback: err = %v, want a page", err)
		}
		status, _ := resp.Data[logical.HTTPStatusCode].(int)
		raw, _ := resp.Data[logical.HTTPRawBody].([]byte)
		page := string(raw)
		if resp.Data[logical.HTTPContentType] != "text/html; charset=utf-8" || status < 200 || status > 599 || page == "" {
			t.Fatalf("callback = %v, want an HTML page", resp.Data)
		}

		secrets := map[string]string{"the client secret": testClientSecret}
		if issued != "" {
			r, _, _ := strings.Cut(issued, ".")
			secrets["the PKCE verifier"], secrets["the state's random part"] = pending.Verifier, r
		}
		// A code long enough not to be found by chance, and not one the
		// provider's own error text or the state carries.
		if len(code) >= 24 && !strings.Contains(errCode+errDesc+state, code) {
			secrets["the code"] = code
		}
		for what, s := range secrets {
			if strings.Contains(page, s) {
				t.Fatalf("the page shows %s: %q", what, page)
			}
		}
		if after := e.storedState("u"); !sameChain(chain, after) {
			t.Fatalf("the chain of u changed: before %+v, after %+v", chain, after)
		}
		if got := entryCount(e.b); got != names {
			t.Fatalf("entries = %d after the callback, want %d: a name was created for state %q", got, names, state)
		}
		if kind != fuzzStatePending {
			if status != 400 || !strings.Contains(page, "unknown") {
				t.Fatalf("callback of state %q = %d %q, want 400 unknown", state, status, page)
			}
			if got := store.writes.Load(); got != 0 {
				t.Fatalf("storage writes = %d for state %q that matches nothing, want 0", got, state)
			}
		}
	})
}
