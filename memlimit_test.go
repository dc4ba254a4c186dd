package tokenbroker

import (
	"runtime/debug"
	"testing"
)

func TestParseMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  bool
	}{
		{"400MiB", 400 << 20, false},
		{"1GiB", 1 << 30, false},
		{"512 MiB", 512 << 20, false},
		{"300MB", 300e6, false},
		{"1048576", 1 << 20, false},
		{"4096B", 4096, false},
		{"off", 0, false},
		{"OFF", 0, false},
		{"0", 0, true},
		{"-1MiB", 0, true},
		{"lots", 0, true},
		{"1.5GiB", 0, true},
		{"9999999TiB", 0, true},
	} {
		got, err := parseMemoryLimit(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("parseMemoryLimit(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestApplyMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	if got, err := ApplyMemoryLimit(env(nil)); got != 0 || err != nil {
		t.Fatalf("unset: %d, %v", got, err)
	}
	if got, err := ApplyMemoryLimit(env(map[string]string{MemoryLimitEnv: "300MiB", "GOMEMLIMIT": "1GiB"})); got != 0 || err != nil {
		t.Fatalf("GOMEMLIMIT set: %d, %v; want it left to the runtime", got, err)
	}
	if got, err := ApplyMemoryLimit(env(map[string]string{MemoryLimitEnv: "nonsense"})); got != 0 || err == nil {
		t.Fatalf("nonsense: %d, %v", got, err)
	}
	if lim := debug.SetMemoryLimit(-1); lim != prev {
		t.Fatalf("the limit changed to %d without a valid setting", lim)
	}
	got, err := ApplyMemoryLimit(env(map[string]string{MemoryLimitEnv: "300MiB"}))
	if got != 300<<20 || err != nil {
		t.Fatalf("300MiB: %d, %v", got, err)
	}
	if lim := debug.SetMemoryLimit(-1); lim != 300<<20 {
		t.Fatalf("runtime limit %d, want %d", lim, 300<<20)
	}
}
