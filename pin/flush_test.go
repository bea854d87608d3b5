package pin

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

type flushResult struct {
	deleted int
	took    time.Duration
	err     error
}

// flushWait runs one Flush and waits for its callback.
func flushWait(t *testing.T, f *Flusher, family uint8, mark, mask uint32) flushResult {
	t.Helper()
	res := make(chan flushResult, 1)
	f.Flush(family, mark, mask, func(d int, took time.Duration, err error) { res <- flushResult{d, took, err} })
	select {
	case r := <-res:
		return r
	case <-time.After(60 * time.Second):
		t.Fatal("flush did not finish")
	}
	return flushResult{}
}

// ctEntries creates n UDP entries from src with the given mark, sports
// counting up from sport0.
func ctEntries(t testing.TB, c *conntrack.Conn, src, dst netip.Addr, sport0 uint16, n int, mark uint32) {
	t.Helper()
	for i := range n {
		f := conntrack.NewFlow(unix.IPPROTO_UDP, 0, src, dst, sport0+uint16(i), 53, 600, mark)
		if err := c.Create(f); err != nil {
			t.Fatalf("create conntrack entry %d: %v", i, err)
		}
	}
}

func ctCount(t testing.TB, c *conntrack.Conn) map[uint32]int {
	t.Helper()
	flows, err := c.Dump(nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint32]int{}
	for _, f := range flows {
		fam := uint32(4)
		if f.TupleOrig.IP.SourceAddress.Is6() {
			fam = 6
		}
		out[f.Mark|fam] += 1
	}
	return out
}

func TestFlusher(t *testing.T) {
	ns := newNS(t, "pin-flush")
	c := ns.conntrack(t)
	v4a, v4b := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("198.51.100.7")
	v6a, v6b := netip.MustParseAddr("2001:db8::10"), netip.MustParseAddr("2001:db8:1::7")
	const m1, m2, foreign = 0x01000000, 0x02000000, 0x0000ca6c
	ctEntries(t, c, v4a, v4b, 1000, 30, m1|foreign) // isp1, with a foreign bit pattern
	ctEntries(t, c, v4a, v4b, 2000, 20, m2)
	ctEntries(t, c, v6a, v6b, 1000, 10, m1)
	ctEntries(t, c, v4a, v4b, 3000, 5, foreign) // not pinned

	f, err := NewFlusher(ns.fd(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// isp1, IPv4 only.
	if r := flushWait(t, f, unix.AF_INET, m1, DefaultMask); r.err != nil || r.deleted != 30 {
		t.Fatalf("flush isp1 ipv4 = %+v, want 30 deleted", r)
	}
	want := map[uint32]int{m2 | 4: 20, m1 | 6: 10, foreign | 4: 5}
	if got := ctCount(t, c); !equalCounts(got, want) {
		t.Fatalf("entries left %v, want %v", got, want)
	}
	// isp1, both families.
	if r := flushWait(t, f, 0, m1, DefaultMask); r.err != nil || r.deleted != 10 {
		t.Fatalf("flush isp1 = %+v, want 10 deleted", r)
	}
	want = map[uint32]int{m2 | 4: 20, foreign | 4: 5}
	if got := ctCount(t, c); !equalCounts(got, want) {
		t.Fatalf("entries left %v, want %v", got, want)
	}
	if r := flushWait(t, f, 99, m1, DefaultMask); r.err == nil {
		t.Fatal("unknown family: no error")
	}
}

func equalCounts(a, b map[uint32]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestFlusherClose(t *testing.T) {
	ns := newNS(t, "pin-flushc")
	f, err := NewFlusher(ns.fd(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var errs []error
	for range 50 {
		f.Flush(0, 0x01000000, DefaultMask, func(_ int, _ time.Duration, err error) {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		})
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// Every callback ran, before Close returned: done or ErrClosed.
	mu.Lock()
	n := len(errs)
	mu.Unlock()
	if n != 50 {
		t.Fatalf("%d callbacks after Close, want 50", n)
	}
	got := make(chan error, 1)
	f.Flush(0, 1, 1, func(_ int, _ time.Duration, err error) { got <- err })
	if err := <-got; err != ErrClosed {
		t.Fatalf("Flush after Close: %v, want ErrClosed", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
