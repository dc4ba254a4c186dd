package bench

// What a bulk write and a bulk first read allocate, in-process: the backend
// (tokenbroker.Factory on in-memory storage) handles logical.Requests as
// Vault would hand them over, against the fake provider run in a child
// process (this test binary, re-executed), so that the fake's own
// allocations and the tokens it keeps are not counted. Each benchmark
// reports, beside B/op and allocs/op, live-B/op: the heap still in use per
// operation after a collection, what a name keeps; the rest of B/op is
// garbage, which the GC's pacing turns into peak RSS under a bulk load.
//
//	go test ./bench -run '^$' -bench 'Alloc' -benchtime 5000x -memprofile /tmp/mem.out
//	go tool pprof -sample_index=alloc_space -top bench.test /tmp/mem.out
//
// LIVE_PROFILE=<file> also writes a heap profile right after the timed loop,
// while the backend lives: its inuse_space is what the names keep.
//
// TOKEN_SIZE (bytes, default 1500) is the size of the access tokens the fake
// issues.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	tokenbroker "github.com/tokenbroker/vault-plugin-secrets-tokenbroker"
	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

const (
	allocClientID     = "alloc-client"
	allocClientSecret = "alloc-client-secret"
	fakeChildEnv      = "TOKENBROKER_BENCH_FAKE_CHILD"
)

func TestMain(m *testing.M) {
	if os.Getenv(fakeChildEnv) == "1" {
		serveFakeChild()
		return
	}
	os.Exit(m.Run())
}

// serveFakeChild runs the fake provider until stdin closes, after printing
// its URL.
func serveFakeChild() {
	fake := fakeprovider.New(fakeprovider.Options{})
	fake.AddClient(allocClientID, allocClientSecret)
	size, _ := strconv.Atoi(os.Getenv("TOKEN_SIZE"))
	fake.SetAccessTokenSize(size)
	if err := fake.Start(); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println(fake.URL())
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until the parent closes it
	fake.Close()
}

// startFakeChild starts the fake in a child process and returns its URL.
func startFakeChild(b *testing.B) string {
	b.Helper()
	size := os.Getenv("TOKEN_SIZE")
	if size == "" {
		size = "1500"
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fakeChildEnv+"=1", "TOKEN_SIZE="+size)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "http") {
		b.Fatalf("fake child: %q, %v", line, err)
	}
	return strings.TrimSpace(line)
}

type allocEnv struct {
	b       *testing.B
	backend logical.Backend
	storage logical.Storage
	url     string
}

func newAllocEnv(b *testing.B) *allocEnv {
	b.Helper()
	e := &allocEnv{b: b, storage: &logical.InmemStorage{}, url: startFakeChild(b)}
	conf := logical.TestBackendConfig()
	conf.StorageView = e.storage
	// Vault's default level: debug lines are not formatted, as in production.
	conf.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: io.Discard})
	be, err := tokenbroker.Factory(context.Background(), conf)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { be.Cleanup(context.Background()) })
	e.backend = be
	return e
}

func (e *allocEnv) do(op logical.Operation, path string, data map[string]any) *logical.Response {
	resp, err := e.backend.HandleRequest(context.Background(), &logical.Request{
		Operation: op, Path: path, Data: data, Storage: e.storage,
	})
	if err == nil && resp != nil && resp.IsError() {
		err = resp.Error()
	}
	if err != nil {
		e.b.Fatalf("%s %s: %v", op, path, err)
	}
	return resp
}

func (e *allocEnv) client() map[string]any {
	return map[string]any{
		"provider": "oauth2", "token_url": e.url + fakeprovider.PathOAuth2Token,
		"client_id": allocClientID, "client_secret": allocClientSecret,
	}
}

// liveHeap is the heap in use after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// measure runs op(i) for i in [0, b.N) timed, and reports live-B/op.
func measure(b *testing.B, op func(i int)) {
	before := liveHeap()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		op(i)
	}
	b.StopTimer()
	b.ReportMetric(float64(int64(liveHeap())-int64(before))/float64(b.N), "live-B/op")
	// LIVE_PROFILE: a heap profile while the backend (and what it keeps) is
	// alive, for its inuse_space; -memprofile's is written after cleanup.
	if path := os.Getenv("LIVE_PROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.WriteHeapProfile(f); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAllocConfigWrite is one write of a self-contained config.
func BenchmarkAllocConfigWrite(b *testing.B) {
	e := newAllocEnv(b)
	body := e.client()
	measure(b, func(i int) { e.do(logical.UpdateOperation, fmt.Sprintf("config/s%06d", i), body) })
}

// BenchmarkAllocConnectionWrite is one write of a connection of an app.
func BenchmarkAllocConnectionWrite(b *testing.B) {
	e := newAllocEnv(b)
	e.do(logical.UpdateOperation, "app/scale", e.client())
	body := map[string]any{"app": "scale"}
	measure(b, func(i int) { e.do(logical.UpdateOperation, fmt.Sprintf("config/s%06d", i), body) })
}

// BenchmarkAllocFirstRead is the first read of a name, which mints: of a
// self-contained config, and of a connection.
func BenchmarkAllocFirstRead(b *testing.B) {
	for _, apps := range []bool{false, true} {
		b.Run(map[bool]string{false: "config", true: "connection"}[apps], func(b *testing.B) {
			e := newAllocEnv(b)
			body := e.client()
			if apps {
				e.do(logical.UpdateOperation, "app/scale", body)
				body = map[string]any{"app": "scale"}
			}
			for i := range b.N {
				e.do(logical.UpdateOperation, fmt.Sprintf("config/s%06d", i), body)
			}
			measure(b, func(i int) { e.do(logical.ReadOperation, fmt.Sprintf("creds/s%06d", i), nil) })
		})
	}
}
