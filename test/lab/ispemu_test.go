package lab_test

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/probe"
	"github.com/uplinkd/uplinkd/test/ispemu"
	"github.com/uplinkd/uplinkd/test/lab"
	"github.com/uplinkd/uplinkd/test/testutil"
)

// prober probes target from the router through isp's link, as uplinkd
// would, and hands out its results.
type prober struct {
	t   *testing.T
	out chan probe.Result
}

// emuInterval and emuTimeout are the probers' settings: the timeout is
// generous so that a stall of the emulator (a user-space process, on a
// busy machine) delays replies rather than loses them.
const (
	emuInterval = 10 * time.Millisecond
	emuTimeout  = 2 * time.Second
)

func startProber(t *testing.T, l *lab.Lab, isp string, target netip.Addr, window int) *prober {
	t.Helper()
	link, err := l.RouterLink(isp)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := l.RouterAddr(isp)
	if err != nil {
		t.Fatal(err)
	}
	gw := lab.ISP1Gateway
	if isp == lab.ISP2 {
		gw = lab.ISP2Gateway
	}
	mustIP(t, l, lab.Router, "route", "replace", target.String()+"/32", "via", gw.String(), "dev", link)
	p := &prober{t: t, out: make(chan probe.Result, 64)}
	var pr *probe.Prober
	if err := testutil.InNS(l.NS(lab.Router), func() {
		pr, err = probe.Start(probe.Config{
			Uplink: isp, Interface: link, Source: addr.Addr(), Targets: probe.ICMP(target),
			Interval: emuInterval, Timeout: emuTimeout, Window: window,
		}, p.out)
	}); err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pr.Stop)
	return p
}

// rounds returns the next n results.
func (p *prober) rounds(n int) []probe.Result {
	p.t.Helper()
	var rs []probe.Result
	for len(rs) < n {
		select {
		case r := <-p.out:
			rs = append(rs, r)
		case <-time.After(10 * time.Second):
			p.t.Fatalf("no probe result after %d", len(rs))
		}
	}
	return rs
}

// roundLoss is the share of rounds in rs without a reply.
func roundLoss(rs []probe.Result) float64 {
	lost := 0
	for _, r := range rs {
		if r.Replies == 0 {
			lost++
		}
	}
	return float64(lost) / float64(len(rs))
}

// medianRTT is the median RTT of the answered rounds among rs.
func medianRTT(rs []probe.Result) time.Duration {
	var rtts []time.Duration
	for _, r := range rs {
		if r.RTT > 0 {
			rtts = append(rtts, r.RTT)
		}
	}
	if len(rtts) == 0 {
		return 0
	}
	slices.Sort(rtts)
	return rtts[len(rtts)/2]
}

// The emulator answers each ISP's echo requests with that ISP's loss and
// delay, switches modes at run time and counts what it did.
func TestISPEmu(t *testing.T) {
	l := newLab(t)
	ctx := t.Context()
	emu, err := l.StartISPEmu(ctx, labtool(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if out := mustExec(t, l, lab.Inet, "cat", "/proc/sys/net/ipv4/icmp_echo_ignore_all"); strings.TrimSpace(out) != "1" {
		t.Fatalf("kernel echo replies not switched off in the Internet namespace: %q", out)
	}
	lossy := ispemu.Mode{Loss: 0.3, Delay: 50 * time.Millisecond, Jitter: 10 * time.Millisecond}
	if err := emu.Set(ctx, lab.ISP2, lossy); err != nil {
		t.Fatal(err)
	}
	const window = 400
	p1 := startProber(t, l, lab.ISP1, lab.Target1, window)
	p2 := startProber(t, l, lab.ISP2, lab.Target2, window)
	// Rounds in flight before the window is full, then the full window.
	rounds := window + int(emuTimeout/emuInterval) + 10
	r1 := p1.rounds(rounds)
	r2 := p2.rounds(rounds)
	s1, s2 := r1[len(r1)-1].Stats, r2[len(r2)-1].Stats
	m1, m2 := medianRTT(r1), medianRTT(r2)
	// The loss of the last window of rounds, every one decided: the
	// prober's own window also holds the latest answers but not yet the
	// latest losses (they count once timed out), which with a long
	// timeout underrates the loss.
	loss2 := roundLoss(r2[len(r2)-window:])
	t.Logf("isp1 (healthy): %+v, median round RTT %v", s1, m1)
	t.Logf("isp2 (30%% loss, 50ms ± 10ms): %+v, median round RTT %v, loss of the last %d rounds %.3f", s2, m2, window, loss2)
	if !s1.Full || s1.Lost > 0 {
		t.Errorf("isp1 healthy: %+v, want a full window without loss", s1)
	}
	// 400 probes at 30%: the standard deviation is 2.3 points.
	if !s2.Full || loss2 < 0.22 || loss2 > 0.38 {
		t.Errorf("isp2 loss %.3f (window full: %v), want 0.30 ± 0.08", loss2, s2.Full)
	}
	// The mean RTT can only grow with the emulator's stalls: its lower
	// bound holds however busy the machine; the median of the rounds,
	// which a stall of a second or two does not move, says the delay is
	// about 50ms and isp2's alone.
	if s2.RTT < 45*time.Millisecond || s2.Jitter < time.Millisecond {
		t.Errorf("isp2 RTT %v jitter %v, want at least 45ms with jitter", s2.RTT, s2.Jitter)
	}
	if m2 < 45*time.Millisecond || m2 > 100*time.Millisecond {
		t.Errorf("isp2 median round RTT %v, want about 50ms", m2)
	}
	if m1 >= 45*time.Millisecond {
		t.Errorf("isp1 median round RTT %v (mean %v): isp2's delay leaked", m1, s1.RTT)
	}

	// Switched at run time: ISP2 drops everything.
	if err := emu.Set(ctx, lab.ISP2, ispemu.Mode{Loss: 1}); err != nil {
		t.Fatal(err)
	}
	run := 0
	for run < 20 {
		ok := false
		for _, r := range p2.rounds(1) {
			ok = r.Good
		}
		if ok {
			run = 0
		} else {
			run++
		}
	}
	st, err := emu.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := st[lab.ISP2]; c.Requests < window || c.Dropped == 0 || c.Answered == 0 || c.Mode != "loss=100% delay=0s jitter=0s" {
		t.Errorf("isp2 counters %+v", c)
	}
	if c := st[lab.ISP1]; c.Requests < window || c.Dropped != 0 || c.Answered != c.Requests {
		t.Errorf("isp1 counters %+v", c)
	}
	if _, err := emu.Do(context.Background(), "set isp2 fast"); err == nil || !strings.Contains(err.Error(), "unknown mode") {
		t.Errorf("bad mode: err = %v", err)
	}
}
