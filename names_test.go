package tokenbroker

import (
	"fmt"
	"slices"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

// TestPaginatedList: LIST config/ and status/ page through every name in
// order with after and limit, and follow writes and deletes.
func TestPaginatedList(t *testing.T) {
	e := newEnv(t)
	var want []string
	for i := range 25 {
		name := fmt.Sprintf("n%02d", i)
		e.config(name, fakeprovider.Echo360, nil)
		want = append(want, name)
	}
	for _, path := range []string{"config/", "status/"} {
		t.Run(path, func(t *testing.T) {
			var got []string
			after := ""
			for page := 0; ; page++ {
				resp := e.mustDo(logical.ListOperation, path, map[string]any{"after": after, "limit": 10})
				keys, _ := resp.Data["keys"].([]string)
				if len(keys) > 10 {
					t.Fatalf("page %d has %d names, want at most 10", page, len(keys))
				}
				if len(keys) == 0 {
					break
				}
				got = append(got, keys...)
				after = keys[len(keys)-1]
			}
			if !slices.Equal(got, want) {
				t.Fatalf("pages = %v, want %v", got, want)
			}
		})
	}
	t.Run("follows deletes and writes", func(t *testing.T) {
		e.mustDo(logical.DeleteOperation, "config/n03", nil)
		e.config("m00", fakeprovider.Echo360, nil)
		resp := e.mustDo(logical.ListOperation, "config/", map[string]any{"limit": 4})
		if got, want := resp.Data["keys"], []string{"m00", "n00", "n01", "n02"}; !slices.Equal(got.([]string), want) {
			t.Fatalf("first page = %v, want %v", got, want)
		}
		resp = e.mustDo(logical.ListOperation, "config/", map[string]any{"after": "n02", "limit": 2})
		if got, want := resp.Data["keys"], []string{"n04", "n05"}; !slices.Equal(got.([]string), want) {
			t.Fatalf("page after n02 = %v, want %v", got, want)
		}
	})
	t.Run("bad limit", func(t *testing.T) {
		for _, limit := range []int{0, -1, maxListLimit + 1} {
			_, err := e.do(logical.ListOperation, "config/", map[string]any{"limit": limit})
			expectErr(t, fmt.Sprintf("limit=%d", limit), err, "limit must be between 1 and")
		}
	})
}

// TestListIndexBuiltAtStart: the refresh loop, listing the names it
// schedules when the mount starts, builds the LIST index too, so an
// operator's first page does not list 100 000 names from storage.
func TestListIndexBuiltAtStart(t *testing.T) {
	e := newEnv(t)
	for i := range 5 {
		e.config(fmt.Sprintf("n%d", i), fakeprovider.Echo360, nil)
	}
	e.restart()
	if err := e.periodic(); err != nil { // the loop starts and loads every name
		t.Fatalf("periodic: %v", err)
	}
	lists := e.storage.configLists.Load()
	resp := e.mustDo(logical.ListOperation, "config/", map[string]any{"limit": 2})
	if got, want := resp.Data["keys"], []string{"n0", "n1"}; !slices.Equal(got.([]string), want) {
		t.Fatalf("first page = %v, want %v", got, want)
	}
	expect(t, "storage listings of config/ by the first LIST after the start", e.storage.configLists.Load()-lists, int64(0))
}
