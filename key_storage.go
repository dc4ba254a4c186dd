package tokenbroker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// keyPrefix keys each name's signing keys (key/<name>), apart from its
// config and seal-wrapped like it.
const keyPrefix = "key/"

// keyRingEntry is the stored key/<name> entry.
type keyRingEntry struct {
	Current  *storedKey `json:"current,omitempty"`
	Next     *storedKey `json:"next,omitempty"`
	Previous *storedKey `json:"previous,omitempty"`
	// PreviousUntil: the previous key is published until then (one
	// assertion lifetime after the promotion that retired it).
	PreviousUntil time.Time `json:"previous_until,omitzero"`
}

// keyRing is a name's signing keys, parsed: the current one signs; a next
// one, published at once, takes over on promotion; the previous one stays
// published a little after. A ring is never changed in place; nil is none.
type keyRing struct {
	current, next, previous *signingKey
	previousUntil           time.Time
}

// active is the current key (the one that signs), nil when none.
func (r *keyRing) active() *signingKey {
	if r == nil {
		return nil
	}
	return r.current
}

// pending is the next key, nil when none.
func (r *keyRing) pending() *signingKey {
	if r == nil {
		return nil
	}
	return r.next
}

func (r *keyRing) copied() keyRing {
	if r == nil {
		return keyRing{}
	}
	return *r
}

// withCurrent replaces the current key (the next and previous stay).
func (r *keyRing) withCurrent(k *signingKey) *keyRing {
	next := r.copied()
	next.current = k
	return &next
}

// withNext sets the key that promotion makes current.
func (r *keyRing) withNext(k *signingKey) *keyRing {
	next := r.copied()
	next.next = k
	return &next
}

// promoted makes the next key current; the current one stays published as
// the previous key until keep has passed.
func (r *keyRing) promoted(now time.Time, keep time.Duration) (*keyRing, error) {
	if r.pending() == nil {
		return nil, errors.New("there is no next key to promote: write one to key/<name>/rotate first")
	}
	return &keyRing{current: r.next, previous: r.current, previousUntil: now.Add(keep)}, nil
}

// published lists the keys a JWKS shows at now: current, next, and the
// previous one while it is still published.
func (r *keyRing) published(now time.Time) []*signingKey {
	if r == nil {
		return nil
	}
	var out []*signingKey
	for _, k := range []*signingKey{r.current, r.next} {
		if k != nil {
			out = append(out, k)
		}
	}
	if r.previous != nil && now.Before(r.previousUntil) {
		out = append(out, r.previous)
	}
	return out
}

func (r *keyRing) entry() keyRingEntry {
	stored := func(k *signingKey) *storedKey {
		if k == nil {
			return nil
		}
		return k.stored
	}
	return keyRingEntry{Current: stored(r.current), Next: stored(r.next), Previous: stored(r.previous), PreviousUntil: r.previousUntil}
}

// loadKeyRing reads and parses name's keys; nil when it has none.
func loadKeyRing(ctx context.Context, s logical.Storage, name string) (*keyRing, error) {
	stored, err := keyEntries.load(ctx, s, name)
	if err != nil || stored == nil {
		return nil, err
	}
	r := &keyRing{previousUntil: stored.PreviousUntil}
	for _, k := range []struct {
		role string
		st   *storedKey
		dst  **signingKey
	}{{"current", stored.Current, &r.current}, {"next", stored.Next, &r.next}, {"previous", stored.Previous, &r.previous}} {
		if k.st == nil {
			continue
		}
		if *k.dst, err = k.st.parse(); err != nil {
			return nil, fmt.Errorf("the %s key of %q: %w", k.role, name, err)
		}
	}
	return r, nil
}

// writeKeyRing stores name's keys, or deletes the entry when r is nil.
func writeKeyRing(ctx context.Context, s logical.Storage, name string, r *keyRing) error {
	if r == nil {
		return keyEntries.delete(ctx, s, name)
	}
	entry := r.entry()
	return keyEntries.save(ctx, s, name, &entry)
}

// withKeys returns a copy of c holding ring.
func (c *providerConfig) withKeys(ring *keyRing) *providerConfig {
	next := *c
	next.keys = ring
	return &next
}

// replaceKeys republishes name's loaded snapshot, if one is loaded, with
// the settings of cfg holding ring (snapshots hold no key: the next renewal
// loads them). Callers hold the name's lock.
func (b *backend) replaceKeys(name string, cfg *providerConfig, ring *keyRing) {
	if snap := b.loaded(name); snap != nil {
		b.publish(name, snap.with(func(n *snapshot) { n.settings = settingsOf(cfg.withKeys(ring)) }))
	}
}
