package tokenbroker

// The callback is open to anyone (no Vault token): whatever it is sent, an
// unknown name must cost nothing that lasts. A flood of states naming names
// that were never configured leaves the backend's name map, storage and heap
// as they were.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// writeCountingStorage counts the writes (puts and deletes) that go through it.
type writeCountingStorage struct {
	logical.Storage
	writes atomic.Int64
}

func (s *writeCountingStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	s.writes.Add(1)
	return s.Storage.Put(ctx, e)
}

func (s *writeCountingStorage) Delete(ctx context.Context, key string) error {
	s.writes.Add(1)
	return s.Storage.Delete(ctx, key)
}

// entryCount is the number of names the backend holds an entry for.
func entryCount(b *backend) int {
	n := 0
	b.entries.Range(func(_, _ any) bool { n++; return true })
	return n
}

// callbackRequest is the provider's answer arriving at the callback: a GET
// with a query (Vault turns it into a read) or a form POST (an update).
func callbackRequest(s logical.Storage, post bool, data map[string]any) *logical.Request {
	var op logical.Operation = logical.ReadOperation
	if post {
		op = logical.UpdateOperation
	}
	return &logical.Request{Operation: op, Path: callbackPath, Data: data, Storage: s, Unauthenticated: true}
}

// heapInUse is the live heap after a full collection.
func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestCallbackFloodOfUnknownNamesLeavesNothingBehind: 100 000 requests to
// each path open to anyone, every one naming a name never configured, leave
// the live heap within 1 MB of where it was, the backend's name map as it
// was, and storage unwritten.
func TestCallbackFloodOfUnknownNamesLeavesNothingBehind(t *testing.T) {
	const (
		requests  = 100_000
		maxGrowth = 1 << 20 // bytes of live heap a whole flood may leave
	)
	random, _, _ := strings.Cut(newAuthState("x"), ".")
	cases := []struct {
		name string
		// request is the i-th request of the flood; want is its answer's status.
		request func(s logical.Storage, i int) *logical.Request
		want    int
	}{
		{"callback, a GET and a form POST in turn", func(s logical.Storage, i int) *logical.Request {
			return callbackRequest(s, i%2 == 1, map[string]any{"state": fmt.Sprintf("%s.flood-%d", random, i), "code": "c"})
		}, http.StatusBadRequest},
		{"jwks", func(s logical.Storage, i int) *logical.Request {
			return &logical.Request{Operation: logical.ReadOperation, Path: fmt.Sprintf("%sflood-%d", jwksPattern, i), Storage: s, Unauthenticated: true}
		}, http.StatusNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.userConfig("u", nil)
			e.authorize("u") // a real pending authorization beside the flood
			store := &writeCountingStorage{Storage: e.storage}
			ctx := context.Background()
			names := entryCount(e.b)
			status := func(i int) (int, string) {
				resp, err := e.b.HandleRequest(ctx, c.request(store, i))
				var coded logical.HTTPCodedError
				switch {
				case errors.As(err, &coded):
					return coded.Code(), err.Error()
				case err != nil:
					return 0, err.Error()
				case resp == nil:
					return 0, "no response"
				}
				got, _ := resp.Data[logical.HTTPStatusCode].(int)
				raw, _ := resp.Data[logical.HTTPRawBody].([]byte)
				return got, string(raw)
			}
			// The first requests warm up what is allocated once (templates, pools).
			for i := range 2 {
				if got, answer := status(-1 - i); got != c.want {
					t.Fatalf("request of an unknown name = %d %q, want %d", got, answer, c.want)
				}
			}
			before := heapInUse()
			for i := range requests {
				if got, answer := status(i); got != c.want {
					t.Fatalf("request %d = %d %q, want %d", i, got, answer, c.want)
				}
			}
			after := heapInUse()

			growth := int64(after) - int64(before)
			t.Logf("%d requests of unknown names: live heap %d -> %d bytes (%+d)", requests, before, after, growth)
			if growth > maxGrowth {
				t.Errorf("live heap grew by %d bytes over %d requests of unknown names, want at most %d", growth, requests, maxGrowth)
			}
			if got := entryCount(e.b); got != names {
				t.Errorf("the backend holds entries for %d names after the flood, want %d (as before)", got, names)
			}
			if got := store.writes.Load(); got != 0 {
				t.Errorf("the flood wrote storage %d times, want 0", got)
			}
		})
	}
}

// TestCallbackRefusesUnknownStatesBeforeAnythingPerName: every way a state
// can fail to match, through a GET and a form POST, is refused with the same
// page, no storage write and no entry for the name. A config without a
// pending authorization is as unknown as a name without a config.
func TestCallbackRefusesUnknownStatesBeforeAnythingPerName(t *testing.T) {
	random, _, _ := strings.Cut(newAuthState("x"), ".")
	cases := []struct {
		name, state, page string
	}{
		{"a name never configured", random + ".nobody", "unknown, already used, or replaced"},
		{"a configured name with nothing pending", random + ".idle", "unknown, already used, or replaced"},
		{"another state of a pending name", provider.NewSecret() + ".u", "unknown, already used, or replaced"},
		{"the pending state's random part, another name", "", "unknown, already used, or replaced"},
		{"no name at all", random, "unknown or malformed state"},
		{"a name that is not one", random + ".a/b", "unknown or malformed state"},
		{"an empty state", "", "unknown or malformed state"},
	}
	for _, c := range cases {
		for _, post := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, post %v", c.name, post), func(t *testing.T) {
				e := newEnv(t)
				e.userConfig("u", nil)
				e.userConfig("idle", nil)
				_, pending := e.authorize("u")
				state := c.state
				if c.name == "the pending state's random part, another name" {
					r, _, _ := strings.Cut(pending, ".")
					state = r + ".nobody"
				}
				store := &writeCountingStorage{Storage: e.storage}
				names := entryCount(e.b)
				resp, err := e.b.HandleRequest(context.Background(), callbackRequest(store, post,
					map[string]any{"state": state, "code": "a-code-nobody-issued"}))
				if err != nil {
					t.Fatal(err)
				}
				status, page := resp.Data[logical.HTTPStatusCode], string(resp.Data[logical.HTTPRawBody].([]byte))
				if status != http.StatusBadRequest || !strings.Contains(page, c.page) {
					t.Fatalf("callback = %v %q, want 400 and %q", status, page, c.page)
				}
				if got := entryCount(e.b); got != names {
					t.Errorf("entries = %d after the callback, want %d", got, names)
				}
				if got := store.writes.Load(); got != 0 {
					t.Errorf("storage writes = %d, want 0", got)
				}
				if _, ok, _ := pendingMatching(context.Background(), e.storage, "u", pending); !ok {
					t.Errorf("the real pending authorization of u is gone after a refused callback")
				}
			})
		}
	}
}
