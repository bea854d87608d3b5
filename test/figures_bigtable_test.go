package test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/test/lab"
)

// TestFiguresBigTable measures carrier failover, event to routes (the
// daemon's own since_event), with 100,000 and 1,000,000 foreign routes in
// main through the LAN, as on a router carrying a full BGP feed from
// elsewhere, and uplinkd's resident memory before and after the table
// grew. UPLINKD_BIGTABLE sets the sizes ("100000,1000000"). It prints
// figures and asserts only behaviour; run it with `make figures`.
func TestFiguresBigTable(t *testing.T) {
	if os.Getenv("UPLINKD_FIGURES") != "1" {
		t.Skip("figures: run with UPLINKD_FIGURES=1 (make figures)")
	}
	sizes := []int{100_000, 1_000_000}
	if s := os.Getenv("UPLINKD_BIGTABLE"); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("UPLINKD_BIGTABLE: %v", err)
			}
			sizes = append(sizes, n)
		}
	}
	for _, n := range sizes {
		t.Run(strconv.Itoa(n), func(t *testing.T) { bigTable(t, n) })
	}
}

var sinceEventRE = regexp.MustCompile(`msg="routing updated".* since_event=([0-9.]+[µm]?s)`)

func bigTable(t *testing.T, n int) {
	const events = 20
	// Damping off: twenty carrier losses in a row are twenty flaps.
	// Multipath: with the resilient balancer the kernel itself drops the
	// members of a link that loses carrier, and uplinkd has nothing to write.
	r := newRigFor(t, strings.Replace(coreConfig("multipath"), "[probe]\n", "[probe]\nflap_limit = 0\n", 1), 10*time.Minute)
	r.start()
	r.waitBoth()
	pid := r.status().Daemon.PID
	rssBefore := rss(t, pid)

	// /32s of 198.18.0.0/15 through the LAN, repeated with higher metrics
	// past 131,072 routes; one `ip -batch`.
	var b strings.Builder
	for i := range n {
		host, metric := i%(1<<17), i/(1<<17)
		fmt.Fprintf(&b, "route add 198.%d.%d.%d/32 via 192.0.2.254 dev %s metric %d\n",
			18+host>>16, (host>>8)&0xff, host&0xff, lab.RouterLANLink, metric)
	}
	batch := filepath.Join(r.dir, "routes")
	if err := os.WriteFile(batch, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	b.Reset()
	start := time.Now()
	if out, err := r.lab.Exec(r.ctx, lab.Router, "ip", "-batch", batch); err != nil {
		t.Fatalf("ip -batch: %v: %s", err, out)
	}
	added := time.Since(start)

	var took []time.Duration
	for range events {
		mark := r.mark()
		if err := r.lab.CarrierDown(r.ctx, lab.ISP2); err != nil {
			t.Fatal(err)
		}
		line := r.waitLog(mark, sinceEventRE, 30*time.Second)
		d, err := time.ParseDuration(strings.Replace(sinceEventRE.FindStringSubmatch(line)[1], "µ", "u", 1))
		if err != nil {
			t.Fatal(err)
		}
		took = append(took, d)
		r.waitOnly("eth1")
		if err := r.lab.CarrierUp(r.ctx, lab.ISP2); err != nil {
			t.Fatal(err)
		}
		r.waitBoth()
	}
	rssAfter := rss(t, pid)
	fmt.Printf("big table: %d foreign routes in main (added in %v); carrier loss, event -> routes (since_event), %d events; load %s\n",
		n, added.Round(time.Millisecond), events, loadavg())
	reportP95("carrier loss, event -> routes", took)
	fmt.Printf("  uplinkd RSS: %d KiB before the routes, %d KiB after %d events\n", rssBefore, rssAfter, events)
}

// reportP95 prints the median and 95th percentile of d.
func reportP95(what string, d []time.Duration) {
	s := append([]time.Duration(nil), d...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	p95 := s[min(len(s)-1, (len(s)*95+99)/100-1)]
	fmt.Printf("  %-40s median %9v  p95 %9v  max %9v\n", what, s[len(s)/2].Round(time.Microsecond),
		p95.Round(time.Microsecond), s[len(s)-1].Round(time.Microsecond))
}

// rss is the resident set of process pid in KiB.
func rss(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}
