package main

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestParentWatch(t *testing.T) {
	var ppid atomic.Int64
	ppid.Store(4242)
	w := &parentWatch{parent: 4242, getppid: func() int { return int(ppid.Load()) }, interval: time.Millisecond}
	gone := make(chan struct{})
	stop := make(chan struct{})
	defer close(stop)
	go w.run(stop, func() { close(gone) })

	if !w.alive() {
		t.Fatalf("alive() = false with the original parent, want true")
	}
	select {
	case <-gone:
		t.Fatalf("gone called while the parent is unchanged")
	case <-time.After(20 * time.Millisecond):
	}
	ppid.Store(1) // Vault was killed: the plugin now belongs to init
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatalf("gone not called within 5s of the parent changing")
	}
	if w.alive() {
		t.Fatalf("alive() = true after re-parenting, want false")
	}
}
