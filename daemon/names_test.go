package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/config"
)

func TestResolver(t *testing.T) {
	var mu sync.Mutex
	answers := map[string][]netip.Addr{"a.example": {netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("198.18.0.1")}}
	r := newResolver()
	r.lookup = func(_ context.Context, name string) ([]netip.Addr, error) {
		mu.Lock()
		defer mu.Unlock()
		if a, ok := answers[name]; ok {
			return a, nil
		}
		return nil, errors.New("no such host")
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { r.run(ctx) })
	defer wg.Wait()
	defer cancel()

	next := func() map[string]nameResult {
		t.Helper()
		select {
		case res := <-r.out:
			m := make(map[string]nameResult)
			for _, x := range res {
				m[x.name] = x
			}
			return m
		case <-time.After(10 * time.Second):
			t.Fatal("no resolution")
		}
		return nil
	}
	r.set([]string{"a.example", "b.example"})
	got := next()
	if a := got["a.example"]; a.err != nil || !slices.Equal(a.addrs, []netip.Addr{netip.MustParseAddr("198.18.0.1")}) {
		t.Errorf("a.example: %+v, want its IPv4 address only", a)
	}
	if b, ok := got["b.example"]; !ok || b.err == nil {
		t.Errorf("b.example: %+v, want an error", b)
	}
	// A new set (a reload) is resolved at once, names already known too.
	mu.Lock()
	answers["b.example"] = []netip.Addr{netip.MustParseAddr("198.18.0.2")}
	mu.Unlock()
	r.set([]string{"b.example"})
	if b := next()["b.example"]; b.err != nil || len(b.addrs) != 1 {
		t.Errorf("b.example after the reload: %+v", b)
	}
}

// TestNamesResolved: a name's address joins its uplinks' targets, an
// uplink probed by names alone is carrier-only until one resolves, and a
// failed resolution keeps the address.
func TestNamesResolved(t *testing.T) {
	cfg := parse(t, "[probe]\ntargets = [\"t1.example\", \"t2.example\"]\n"+testUplinks)
	d := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{})
	u := d.uplinks[0]
	if got := d.targetsOf(u); len(got) != 0 || d.fsmParams(u.cfg).Probed {
		t.Fatalf("before resolution: targets %v, probed %v", got, d.fsmParams(u.cfg).Probed)
	}
	t1 := netip.MustParseAddr("198.18.0.1")
	want := []config.Target{{Method: config.MethodICMP, Addr: t1}}
	d.namesResolved([]nameResult{{name: "t1.example", addrs: []netip.Addr{t1}}, {name: "t2.example", err: errors.New("no such host")}})
	if got := d.targetsOf(u); !slices.Equal(got, want) || !d.fsmParams(u.cfg).Probed {
		t.Fatalf("after resolution: targets %v, probed %v", got, d.fsmParams(u.cfg).Probed)
	}
	// The resolver goes away: t1 keeps its address.
	d.namesResolved([]nameResult{{name: "t1.example", err: errors.New("timeout")}})
	if got := d.targetsOf(u); !slices.Equal(got, want) {
		t.Fatalf("after a failed resolution: %v", got)
	}
	// A round-robin answer that still holds the address changes nothing.
	d.namesResolved([]nameResult{{name: "t1.example", addrs: []netip.Addr{netip.MustParseAddr("198.18.0.9"), t1}}})
	if got := d.targetsOf(u); !slices.Equal(got, want) {
		t.Fatalf("after a round-robin answer: %v", got)
	}
	if s := d.uplinkStatus(u); len(s.Probe.Targets) != 1 || !strings.Contains(s.Probe.Targets[0].Address, "198.18.0.1") {
		t.Fatalf("status targets %+v", s.Probe.Targets)
	}
}
