package scenario

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/uplinkd/uplinkd/bench/internal/monitor"
	"github.com/uplinkd/uplinkd/bench/internal/results"
	"github.com/uplinkd/uplinkd/bench/internal/tools"
	"github.com/uplinkd/uplinkd/test/lab"
)

// ScaleConfig says what the scale scenarios run.
type ScaleConfig struct {
	Uplinkd     string // binary
	Dir         string
	Log         *slog.Logger
	Events      int           // carrier events per figure
	Idle        time.Duration // idle measurement period
	Uplinks     []int         // numbers of uplinks for event-to-routes and memory
	Routes      []int         // routes in main
	IdleUplinks []int         // numbers of uplinks for idle RSS and CPU
	Storm       bool          // run the storm
	// Extra is added to [routing] (settings that large setups need, such
	// as a wider mark mask, once uplinkd has them).
	Extra string
}

const (
	eventTimeout    = 30 * time.Second
	convergeTimeout = 3 * time.Minute
	firstTable      = 1000
)

func scaleConfig(n int, probe bool, extra string) string {
	var b strings.Builder
	b.WriteString("[routing]\nlan_interfaces = [\"" + lab.PeerLink + "\"]\n")
	if extra != "" {
		b.WriteString(extra + "\n")
	} else if n > 255 {
		// The default mark_mask (8 bits) pins at most 255 uplinks. Nine
		// bits: bit 23 is one of tailscale's, and there is none in the lab.
		b.WriteString("mark_mask = 0xff800000\n")
	}
	b.WriteString("\n[probe]\nflap_limit = 0\n")
	if probe {
		fmt.Fprintf(&b, "targets = [%q, %q]\n", lab.ScaleTarget1.String(), lab.ScaleTarget2.String())
	}
	b.WriteString(lab.ScaleUplinkConfig(n, firstTable))
	return b.String()
}

// scaleRun is uplinkd in one scale lab.
type scaleRun struct {
	lab *lab.Lab
	up  *tools.Uplinkd
	mon *monitor.Monitor
	n   int
	log *slog.Logger
}

func (s *scaleRun) close() {
	if s.mon != nil {
		s.mon.Close()
	}
	if s.up != nil {
		_ = s.up.Stop()
	}
	s.lab.Close()
}

// startScale builds a lab of n uplinks, loads routes into main and starts
// uplinkd; it returns the time from the start to every uplink active. A
// configuration uplinkd refuses is returned as errRefused.
func startScale(ctx context.Context, cfg ScaleConfig, name string, n, routes int, probe bool) (*scaleRun, time.Duration, error) {
	dir := filepath.Join(cfg.Dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, 0, err
	}
	l, err := lab.NewScale(ctx, randomPrefix("bs"), n)
	if err != nil {
		return nil, 0, err
	}
	s := &scaleRun{lab: l, n: n, log: cfg.Log}
	if routes > 0 {
		h, err := handleIn(l.NS(lab.Router))
		if err != nil {
			s.close()
			return nil, 0, err
		}
		link, err := h.LinkByName(lab.PeerLink)
		h.Close()
		if err != nil {
			s.close()
			return nil, 0, err
		}
		t := time.Now()
		if err := LoadRoutes(l.NS(lab.Router), routes, lab.PeerAddr, link.Attrs().Index); err != nil {
			s.close()
			return nil, 0, fmt.Errorf("load %d routes: %w", routes, err)
		}
		cfg.Log.Info("routes loaded into main", "routes", routes, "took", time.Since(t).Round(time.Millisecond))
	}
	s.up = &tools.Uplinkd{Bin: cfg.Uplinkd, Lab: l, Dir: dir, Config: scaleConfig(n, probe, cfg.Extra), Want: n}
	if err := s.up.Check(ctx); err != nil {
		s.up = nil
		s.close()
		return nil, 0, refused{err}
	}
	s.mon, err = monitor.Start(l.NS(lab.Router))
	if err != nil {
		s.close()
		return nil, 0, err
	}
	t0 := time.Now()
	if err := s.up.Start(ctx); err != nil {
		s.close()
		return nil, 0, err
	}
	wctx, cancel := context.WithTimeout(ctx, convergeTimeout)
	defer cancel()
	if err := s.up.WaitActive(wctx, n); err != nil {
		s.close()
		return nil, 0, err
	}
	return s, time.Since(t0), nil
}

// refused is a configuration uplinkd's check rejects: the row is n/a.
type refused struct{ err error }

func (r refused) Error() string { return r.err.Error() }

// eventFigures are the figures of a series of carrier events.
type eventFigures struct {
	// loss: from each carrier loss to the balance changing (uplinkd's
	// first routing change, or the link message when the kernel deleted
	// uplinkd's nexthops with the carrier) and to the last change of the
	// burst; ret: the same for each carrier return.
	loss, lossSettled, ret, retSettled *results.Figure
	// uplinkd's own since_event of the loss's and the return's update:
	// from the event's arrival in its loop to its last kernel write done.
	lossLogged, retLogged *results.Figure
}

// events takes uplinks 1, 2, ... down and up again over their carrier,
// count times each, waiting each change out.
func (s *scaleRun) events(ctx context.Context, count int) (eventFigures, error) {
	f := eventFigures{&results.Figure{}, &results.Figure{}, &results.Figure{}, &results.Figure{}, &results.Figure{}, &results.Figure{}}
	h, err := handleIn(s.lab.NS(lab.WAN))
	if err != nil {
		return f, err
	}
	defer h.Close()
	for e := range 2 * count {
		u := lab.ScaleUplinkAt(1 + (e/2)%max(1, s.n-1))
		if s.n == 1 {
			u = lab.ScaleUplinkAt(0)
		}
		link, err := h.LinkByName(u.Far)
		if err != nil {
			return f, err
		}
		down := e%2 == 0
		var kernel func(monitor.Event) bool
		if down {
			if kernel, err = carrierMatch(s.lab.NS(lab.Router), u.Link); err != nil {
				return f, err
			}
		}
		match := func(e monitor.Event) bool { return balanceChange(e) || kernel != nil && kernel(e) }
		first, settled := f.ret, f.retSettled
		if down {
			first, settled = f.loss, f.lossSettled
		}
		mark := s.up.LogMark()
		t0 := time.Now()
		if down {
			err = h.LinkSetDown(link)
		} else {
			err = h.LinkSetUp(link)
		}
		if err != nil {
			return f, err
		}
		ectx, cancel := context.WithDeadline(ctx, t0.Add(eventTimeout))
		ev, err := s.mon.First(ectx, t0, match)
		if err == nil {
			last := s.mon.Settled(ectx, ev, match, quiet)
			first.Add(ms(ev.At.Sub(t0)))
			settled.Add(ms(last.At.Sub(t0)))
		}
		cancel()
		switch {
		case err == nil:
		case errors.Is(err, context.DeadlineExceeded):
			first.Miss(ms(eventTimeout))
			settled.Miss(ms(eventTimeout))
			s.log.Warn("no routing change after a carrier event", "link", u.Link, "down", down, "seen", fmt.Sprint(s.mon.Since(t0)))
		default:
			return f, err
		}
		want := s.n
		if down {
			want--
		}
		wctx, cancel := context.WithTimeout(ctx, eventTimeout)
		err = s.up.WaitActive(wctx, want)
		cancel()
		if err != nil {
			return f, err
		}
		if d, ok := s.up.SinceEvent(mark); ok {
			logged := f.retLogged
			if down {
				logged = f.lossLogged
			}
			logged.Add(ms(d))
		}
	}
	return f, nil
}

// rss is the daemon's resident set in MiB.
func rss(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.Atoi(f[1])
			return float64(kb) / 1024, err
		}
	}
	return 0, errors.New("no VmRSS")
}

// cpuTicks is the daemon's user plus system time in clock ticks (1/100 s).
func cpuTicks(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	_, rest, ok := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	u, err1 := strconv.Atoi(f[11])
	st, err2 := strconv.Atoi(f[12])
	return u + st, errors.Join(err1, err2)
}

func one(v float64) *results.Figure { return &results.Figure{Samples: []float64{v}} }

const noSeed = "two ISPs only"

// RunScale runs the scale rows and adds them to res.
func RunScale(ctx context.Context, cfg ScaleConfig, res *results.Results) (results.ScalePlots, error) {
	var plots results.ScalePlots
	res.Setup = []string{
		fmt.Sprintf("Scale rows: uplinkd alone (the seed handles two ISPs and no table size), in scale labs (test/lab NewScale: a router with N uplinks as veth pairs to one WAN namespace, and a non-uplink interface %s). Events are carrier losses and returns of the WAN-side ends of uplinks 1, 2, ..., alternating; each event figure is the median and worst of %d events (p95 in the note), each waited out before the next.", lab.PeerLink, cfg.Events),
		"Event → first routing change: the carrier change is stamped just before its netlink request; a netlink monitor in the router stamps the first route, rule or nexthop change a program made. That includes the kernel's own delay in reporting the carrier change (its linkwatch work: some 0.5 to 0.8 ms here, as the loss rows' \"balance changed\", which is the kernel's deletion of the member, show). \"Routes updated, uplinkd's log\" is the daemon's since_event: from the carrier event's arrival in its loop to its last kernel write of the update, the issue's event-to-routes. Start → all active is read from `uplinkd status`.",
		"Event-to-routes rows run in carrier-only mode (no probe targets); idle rows probe two targets per uplink at the defaults (" + probeDefaults() + ").",
		"Foreign routes in main: every prefix of length 17 to 32 in 198.18.128.0/17, repeated with metrics 1, 2, ... (the documentation ranges hold no million distinct IPv4 prefixes), via " + lab.PeerAddr.String() + " on " + lab.PeerLink + ", loaded before uplinkd starts.",
	}
	if cfg.Extra != "" {
		res.Setup = append(res.Setup, "Extra [routing] settings: `"+strings.ReplaceAll(strings.TrimSpace(cfg.Extra), "\n", "; ")+"`.")
	}
	for _, n := range cfg.Uplinks {
		sec := "Scale: uplinks"
		cfg.Log.Info("scale", "uplinks", n)
		s, took, err := startScale(ctx, cfg, fmt.Sprintf("uplinks-%d", n), n, 0, false)
		var ref refused
		if errors.As(err, &ref) {
			reason := firstLine(ref.Error())
			for _, what := range []string{"start → all active", "carrier events", "RSS after the events"} {
				res.Add(results.Row{Section: sec, What: fmt.Sprintf("%d uplinks: %s", n, what), Unit: results.Millis, Uplinkd: results.NA(reason), Seed: results.NA(noSeed)})
			}
			continue
		}
		if err != nil {
			failed(cfg, res, sec, fmt.Sprintf("%d uplinks", n), err)
			continue
		}
		ev, err := s.events(ctx, cfg.Events)
		var mem float64
		if err == nil {
			mem, err = rss(s.up.PID())
		}
		s.close()
		if err != nil {
			failed(cfg, res, sec, fmt.Sprintf("%d uplinks", n), err)
			continue
		}
		res.Add(results.Row{Section: sec, What: fmt.Sprintf("%d uplinks: start → all active", n), Unit: results.Millis, Uplinkd: one(ms(took)), Seed: results.NA(noSeed), Summary: true})
		addEventRows(res, sec, fmt.Sprintf("%d uplinks", n), ev)
		res.Add(results.Row{Section: sec, What: fmt.Sprintf("%d uplinks: RSS after the events", n), Unit: results.MiB, Uplinkd: one(mem), Seed: results.NA(noSeed)})
		plots.ByUplinks = append(plots.ByUplinks, point(n, ev))
	}
	for _, routes := range cfg.Routes {
		sec := "Scale: routes in main"
		cfg.Log.Info("scale", "routes", routes)
		s, took, err := startScale(ctx, cfg, fmt.Sprintf("routes-%d", routes), 2, routes, false)
		if err != nil {
			failed(cfg, res, sec, fmt.Sprintf("%d routes", routes), err)
			continue
		}
		before, err := rss(s.up.PID())
		var ev eventFigures
		if err == nil {
			ev, err = s.events(ctx, cfg.Events)
		}
		var after float64
		if err == nil {
			after, err = rss(s.up.PID())
		}
		s.close()
		if err != nil {
			failed(cfg, res, sec, fmt.Sprintf("%d routes", routes), err)
			continue
		}
		res.Add(results.Row{Section: sec, What: fmt.Sprintf("%d routes: start → both active", routes), Unit: results.Millis, Uplinkd: one(ms(took)), Seed: results.NA(noSeed)})
		addEventRows(res, sec, fmt.Sprintf("%d routes", routes), ev)
		res.Add(results.Row{Section: sec, What: fmt.Sprintf("%d routes: RSS after start", routes), Unit: results.MiB, Uplinkd: one(before), Seed: results.NA(noSeed)})
		res.Add(results.Row{Section: sec, What: fmt.Sprintf("%d routes: RSS after the events", routes), Unit: results.MiB, Uplinkd: one(after), Seed: results.NA(noSeed), Summary: true})
		plots.ByRoutes = append(plots.ByRoutes, point(routes, ev))
	}
	if cfg.Storm {
		cfg.Log.Info("storm")
		if err := runStorm(ctx, cfg, res); err != nil {
			failed(cfg, res, "Scale: storm", "storm", err)
		}
	}
	for _, n := range cfg.IdleUplinks {
		sec := "Cost: idle"
		cfg.Log.Info("idle", "uplinks", n, "for", cfg.Idle)
		s, _, err := startScale(ctx, cfg, fmt.Sprintf("idle-%d", n), n, 0, true)
		var ref refused
		if errors.As(err, &ref) {
			res.Add(results.Row{Section: sec, What: fmt.Sprintf("%d uplinks probing at the defaults: CPU", n), Unit: results.Pct, Uplinkd: results.NA(firstLine(ref.Error())), Seed: results.NA(noSeed)})
			continue
		}
		if err != nil {
			failed(cfg, res, sec, fmt.Sprintf("%d uplinks probing", n), err)
			continue
		}
		pid := s.up.PID()
		t0, err := cpuTicks(pid)
		start := time.Now()
		if err == nil {
			sleep(ctx, cfg.Idle)
		}
		var t1 int
		var mem float64
		if err == nil {
			t1, err = cpuTicks(pid)
		}
		if err == nil {
			mem, err = rss(pid)
		}
		took := time.Since(start)
		s.close()
		if err != nil {
			failed(cfg, res, sec, fmt.Sprintf("%d uplinks probing", n), err)
			continue
		}
		cpu := float64(t1-t0) / 100 / took.Seconds() * 100
		res.Add(results.Row{Section: sec, What: fmt.Sprintf("%d uplinks probing at the defaults: CPU over %v", n, cfg.Idle), Unit: results.Pct, Uplinkd: one(cpu), Seed: results.NA(noSeed), Summary: true})
		res.Add(results.Row{Section: sec, What: fmt.Sprintf("%d uplinks probing at the defaults: RSS", n), Unit: results.MiB, Uplinkd: one(mem), Seed: results.NA(noSeed), Summary: true})
	}
	return plots, nil
}

// failed records a scenario that could not finish as a row without
// figures, with the reason, so that one failure does not lose the others.
func failed(cfg ScaleConfig, res *results.Results, sec, what string, err error) {
	cfg.Log.Warn("scenario failed", "what", what, "err", err)
	res.Add(results.Row{Section: sec, What: what, Unit: results.Millis, Uplinkd: results.NA("failed: " + firstLine(err.Error())), Seed: results.NA(noSeed), Summary: true})
}

func addEventRows(res *results.Results, sec, what string, ev eventFigures) {
	for _, r := range []struct {
		what    string
		fig     *results.Figure
		note    string
		summary bool
	}{
		{"carrier loss → balance changed", ev.loss, "", true},
		{"carrier loss → last routing change", ev.lossSettled, "", false},
		{"carrier loss → routes updated, uplinkd's log (event received → last write done)", ev.lossLogged, "", false},
		{"carrier return → first routing change", ev.ret, "", false},
		{"carrier return → last routing change", ev.retSettled, "", true},
		{"carrier return → routes updated, uplinkd's log (event received → last write done)", ev.retLogged, "", true},
	} {
		res.Add(results.Row{Section: sec, What: what + ": " + r.what, Unit: results.Millis, Uplinkd: r.fig, Seed: results.NA(noSeed),
			Note: fmt.Sprintf("p95 %s", fmtMs(r.fig.Quantile(0.95))) + r.note, Summary: r.summary})
	}
}

// point is the plotted figure: the time to the last routing change after
// a carrier return, the work uplinkd does itself, and uplinkd's own
// figure for its whole update.
func point(x int, ev eventFigures) results.ScalePoint {
	return results.ScalePoint{X: float64(x), Median: ev.retSettled.Median(), P95: ev.retSettled.Quantile(0.95), Logged: ev.retLogged.Median()}
}

func fmtMs(v float64) string {
	if math.IsInf(v, 1) {
		return "> timeout"
	}
	return fmt.Sprintf("%.2f ms", v)
}

var checkPrefix = regexp.MustCompile(`^uplinkd check: exit status \d+: \S+\.toml:\d+: `)

// firstLine is the first line of uplinkd check's complaint, without the
// temporary file's name.
func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return strings.ReplaceAll(checkPrefix.ReplaceAllString(s, "refused: "), "|", "/")
}
