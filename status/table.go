package status

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/uplinkd/uplinkd/internal/oneline"
)

// ANSI colours of the states, used on terminals only.
var stateColour = map[string]string{
	"active":   "\x1b[32m", // green
	"degraded": "\x1b[33m", // yellow
	"probing":  "\x1b[33m",
	"down":     "\x1b[31m", // red
}

const (
	bold  = "\x1b[1m"
	reset = "\x1b[0m"
)

// recentTransitions is how many transitions, of all uplinks, the table
// lists below the uplinks.
const recentTransitions = 5

// Render writes s as the compact table of `uplinkd status`: a summary
// line, one aligned row per uplink, the latest transitions and the
// counters. colour adds ANSI colours; durations are relative to now.
func Render(w io.Writer, s *Snapshot, colour bool, now time.Time) error {
	p := &printer{w: w, colour: colour}
	d := s.Daemon
	dual := slices.ContainsFunc(s.Uplinks, func(u Uplink) bool { return u.Family == FamilyIPv6 })
	what := "uplinks"
	if dual {
		what = "uplink families"
	}
	p.linef("uplinkd %s (pid %d), up %s, %s balancer, %d of %d %s active",
		d.Version, d.PID, ago(now, d.Started), s.Balancer, s.Active, len(s.Uplinks), what)
	if d.LastFail != "" {
		p.linef("last reload refused, the configuration of %s is in force: %s", d.Loaded.Local().Format(time.DateTime), firstLine(d.LastFail))
	}
	p.linef("")

	// The FAMILY column only when an uplink has IPv6: IPv4-only
	// configurations read as they always did.
	rows := [][]string{{"UPLINK", "STATE", "FOR", "INTERFACE", "LINK", "ADDRESS", "GATEWAY", "WEIGHT", "SHARE", "PROBES", "REASON"}}
	if dual {
		rows[0] = slices.Insert(rows[0], 1, "FAMILY")
	}
	for _, u := range s.Uplinks {
		row := []string{
			u.Name, u.State, ago(now, u.Since), ifname(u), link(u), dash(u.Address), u.Gateway,
			strconv.Itoa(u.Weight), share(u), probes(u.Probe), u.Reason,
		}
		if dual {
			row = slices.Insert(row, 1, familyName(u.Family))
		}
		rows = append(rows, row)
	}
	stateCol := 1
	if dual {
		stateCol = 2
	}
	p.table(rows, func(row, col int, cell string) string {
		if row == 0 {
			return p.paint(bold, cell)
		}
		if col == stateCol {
			return p.paint(stateColour[strings.TrimSpace(cell)], cell)
		}
		return cell
	})
	p.policies(s.Policies)

	type named struct {
		uplink string
		Transition
	}
	var recent []named
	for _, u := range s.Uplinks {
		for _, t := range u.Transitions {
			name := u.Name
			if u.Family == FamilyIPv6 {
				name += " (IPv6)"
			}
			recent = append(recent, named{name, t})
		}
	}
	slices.SortStableFunc(recent, func(a, b named) int { return a.At.Compare(b.At) })
	if len(recent) > recentTransitions {
		recent = recent[len(recent)-recentTransitions:]
	}
	if len(recent) > 0 {
		p.linef("")
		p.line(p.paint(bold, "recent transitions"))
		rows = rows[:0]
		for _, t := range recent {
			rows = append(rows, []string{"  " + ago(now, t.At) + " ago", t.uplink, t.From + " -> " + t.To, t.Reason})
		}
		p.table(rows, func(_, col int, cell string) string {
			if col == 2 {
				to := cell[strings.LastIndexByte(strings.TrimSpace(cell), ' ')+1:]
				return p.paint(stateColour[strings.TrimSpace(to)], cell)
			}
			return cell
		})
	}

	p.linef("")
	r, n, h := s.Reconcile, s.Netlink, s.Hooks
	last := "never"
	if !r.Last.IsZero() {
		last = fmt.Sprintf("last took %s, %s ago", ms(r.LastTook), ago(now, r.Last))
	}
	p.linef("routing  %d reconciles (%s), %d routes and rules written or removed, %d failed", r.Runs, last, r.Changes, r.Errors)
	if r.LastErr != "" && r.Errors > 0 {
		p.linef("         last failure: %s", firstLine(r.LastErr))
	}
	p.pinning(s.Pinning)
	p.linef("netlink  %d dumps, %d resyncs (%d ENOBUFS), %d resubscribes, %d errors retried (%d transient)",
		n.Dumps, n.Resyncs, n.Overruns, n.Resubscribes, n.Errors, n.Transient)
	if n.LastError != "" {
		p.linef("         failing, routing kept as installed: %s", firstLine(n.LastError))
	}
	p.linef("hooks    %d started, %d failed (%d timed out), %d dropped, %d running", h.Started, h.Failed, h.TimedOut, h.Dropped, h.Running)
	return p.err
}

// Families of an uplink entry.
const (
	FamilyIPv4 = "ipv4"
	FamilyIPv6 = "ipv6"
)

// familyName is the FAMILY column: IPv4 or IPv6 (an entry of an older
// daemon without the field is IPv4).
func familyName(f string) string {
	if f == FamilyIPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// printer writes lines and remembers the first error.
type printer struct {
	w      io.Writer
	colour bool
	err    error
}

// linef writes a line; string arguments are escaped (see printable).
func (p *printer) linef(format string, args ...any) {
	for i, a := range args {
		if s, ok := a.(string); ok {
			args[i] = oneline.Escape(s)
		}
	}
	p.line(fmt.Sprintf(format, args...))
}

// line writes s as it is: the caller escaped what came from outside.
func (p *printer) line(s string) {
	if p.err == nil {
		_, p.err = io.WriteString(p.w, s+"\n")
	}
}

func (p *printer) paint(code, s string) string {
	if !p.colour || code == "" {
		return s
	}
	return code + s + reset
}

// table writes rows with columns aligned, two spaces apart; style may
// colour a padded cell, which keeps the alignment. The last column is not
// padded.
func (p *printer) table(rows [][]string, style func(row, col int, cell string) string) {
	var width []int
	for _, r := range rows {
		for i, c := range r {
			r[i] = oneline.Escape(c)
			c = r[i]
			if i >= len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	for i, r := range rows {
		var b strings.Builder
		for j, c := range r {
			if j < len(r)-1 {
				c += strings.Repeat(" ", width[j]-utf8.RuneCountInString(c))
			}
			b.WriteString(style(i, j, c))
			if j < len(r)-1 {
				b.WriteString("  ")
			}
		}
		p.line(strings.TrimRight(b.String(), " "))
	}
}

func ifname(u Uplink) string {
	if u.Ifindex == 0 {
		return u.Interface
	}
	return fmt.Sprintf("%s #%d", u.Interface, u.Ifindex)
}

func link(u Uplink) string {
	switch {
	case u.Ifindex == 0:
		return "missing"
	case !u.AdminUp:
		return "admin down"
	case !u.Carrier:
		return "no carrier"
	}
	return "up"
}

func share(u Uplink) string {
	if !u.InBalance {
		return "-"
	}
	return strconv.FormatFloat(100*u.Share, 'f', 0, 64) + "%"
}

func probes(p Probe) string {
	switch {
	case !p.Enabled:
		return "off"
	case !p.Running:
		return "stopped"
	}
	rtt := "no reply"
	if p.LastRTT > 0 {
		rtt = ms(p.LastRTT)
	}
	loss := ""
	if p.Stats.Probes > 0 {
		loss = fmt.Sprintf(", loss %s", strconv.FormatFloat(p.Stats.Loss, 'f', -1, 64)+"%")
	}
	rate := ""
	if p.PerSecond > 0 {
		rate = ", " + strconv.FormatFloat(p.PerSecond, 'f', 1, 64) + "/s"
	}
	return fmt.Sprintf("%s%s%s, %d/%d failed", rtt, loss, rate, p.Failed, p.Rounds)
}

func dash(s string) string { return cmp.Or(s, "-") }

// ms formats milliseconds with three significant digits: 0.215ms, 12.3ms.
func ms(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64) + "ms"
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64) + "ms"
	case v >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64) + "ms"
	}
	return strconv.FormatFloat(v, 'f', 3, 64) + "ms"
}

// ago formats the time from t to now in at most two units: 45s, 3m12s,
// 5h3m, 2d4h.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := max(now.Sub(t), 0).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}
