package daemon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/uplinkd/uplinkd/netops"
	"github.com/uplinkd/uplinkd/pin"
	"github.com/uplinkd/uplinkd/status"
	"golang.org/x/sys/unix"
)

// pinning is the daemon's side of connection pinning (package pin).
// uplinkd's nftables table is applied on start and on every reconcile
// (Apply writes nothing when the kernel already has it, which is how a
// restart adopts it); a firewall reload that removes or changes it is
// reported by Watch and repaired at once. The routing side is the fwmark
// rule of every usable uplink (netops.Plan). When an uplink stops being
// usable (down, probing), its rule goes and its connections are deleted by
// mark, off the loop. Leaving the balance (standby, degraded) only stops
// new connections: nothing is flushed.
type pinning struct {
	table   *pin.Table // nil: pinning is off
	flusher *pin.Flusher
	svm     pin.SrcValidMark
	svmIdx  map[string]int // uplink name -> ifindex whose src_valid_mark is set
	svmOrig *svmState      // the values before the first start, kept in state_dir
	mask    uint32
	off     string // why pinning is off
	// marks are the uplinks' marks, stable by name (pin.Assign); names no
	// longer configured stay, so their marks are handed out last.
	marks map[string]uint32
	// pinned are the uplinks whose fwmark rule the last reconcile kept;
	// nil before the first reconcile. pinned6: their IPv6 fwmark rule.
	pinned, pinned6 map[string]uint32

	watched   chan struct{} // Watch: someone changed the table
	restore   bool          // a Watch signal is pending: the next change counts as a restore
	applied   bool          // Apply has run once
	key       []pin.Uplink  // what the last Apply built the table from (setKey)
	ups       []pin.Uplink  // applyPins' buffer
	restores  uint64
	stopWatch context.CancelFunc
	watchDone chan struct{}
	closed    bool

	// Written by the flusher's goroutine.
	flushes, flushed, flushErrs atomic.Uint64
}

// openPinning opens the nftables table and the conntrack flusher, and
// adopts the marks an earlier run left in the table. Without nf_tables (or
// with mark_mask = 0) pinning is off, and the daemon routes as before:
// resilient balancer, flushes by NAT address.
func (d *Daemon) openPinning() {
	p := &pinning{watched: make(chan struct{}, 1), svmIdx: make(map[string]int)}
	d.pin = p
	mask := d.cfg.Routing.MarkMask
	if mask == 0 {
		p.off = "mark_mask = 0"
		d.log.Info("connection pinning off", "reason", p.off)
		return
	}
	t, err := pin.Open(pin.Config{Mask: mask, Log: d.log})
	if err != nil {
		p.off = err.Error()
		if !errors.Is(err, pin.ErrUnsupported) {
			p.off = "cannot open the nftables table: " + err.Error()
		}
		d.log.Warn("connection pinning off: established connections may move when uplinks change", "reason", p.off)
		return
	}
	f, err := pin.NewFlusher(0, nil) // flushUnpinned logs each result, with the uplink
	if err != nil {
		t.Close()
		p.off = err.Error()
		d.log.Warn("connection pinning off: established connections may move when uplinks change", "reason", p.off)
		return
	}
	p.table, p.flusher, p.mask, p.marks = t, f, mask, make(map[string]uint32)
	p.svmOrig = loadSVMState(d.cfg.Routing.StateDir)
	if p.svmOrig.warn != nil {
		d.log.Warn("cannot read the original src_valid_mark values of an earlier run", "err", p.svmOrig.warn)
	}
	cur, err := t.Current()
	if err != nil {
		d.log.Warn("cannot read the marks of an earlier run; assigning them anew", "err", err)
	}
	for _, u := range cur {
		p.marks[u.Name] = u.Mark
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.stopWatch, p.watchDone = cancel, make(chan struct{})
	go func() {
		defer close(p.watchDone)
		if err := t.Watch(ctx, p.watched); err != nil && ctx.Err() == nil {
			d.log.Warn("watching the nftables table stopped; it is still checked at every reconcile", "err", err)
		}
	}()
	d.log.Info("connection pinning on", "mask", fmt.Sprintf("%#x", mask), "marks_adopted", len(cur))
}

// pinRecheck makes the next reconcile read src_valid_mark of every
// uplink interface again (events were lost: it may have been reset with a
// link change nobody saw); pinRecheckLink that of one interface.
func (d *Daemon) pinRecheck() {
	if d.pinOn() {
		d.pin.svm.RecheckAll()
	}
}

func (d *Daemon) pinRecheckLink(index int) {
	if d.pinOn() {
		d.pin.svm.Recheck(index)
	}
}

// pinOn says whether connections are pinned.
func (d *Daemon) pinOn() bool { return d.pin != nil && d.pin.table != nil }

// pinWatch is the channel Watch signals on; nil (never ready) without
// pinning.
func (d *Daemon) pinWatch() <-chan struct{} {
	if !d.pinOn() {
		return nil
	}
	return d.pin.watched
}

// tableChanged handles a Watch signal: the table is applied again at once.
func (d *Daemon) tableChanged() {
	d.pin.restore = true
	d.needReconcile = true
}

// markOf returns the uplink's connection mark, 0 without pinning.
func (d *Daemon) markOf(name string) uint32 {
	if !d.configured(name) {
		return d.assignMarks(name)
	}
	return d.markOfConfigured(name)
}

// markOfConfigured is markOf for the name of a configured uplink, without
// looking for it among the uplinks: planning calls it for every uplink,
// and hundreds of uplinks must not search each other.
func (d *Daemon) markOfConfigured(name string) uint32 {
	if !d.pinOn() {
		return 0
	}
	p := d.pin
	if m, ok := p.marks[name]; ok && m != 0 && m&^p.mask == 0 {
		return m
	}
	return d.assignMarks(name)
}

// assignMarks gives every configured uplink its mark, keeping the marks
// already given, and returns name's.
func (d *Daemon) assignMarks(name string) uint32 {
	if !d.pinOn() {
		return 0
	}
	p := d.pin
	names := make([]string, len(d.uplinks))
	for i, u := range d.uplinks {
		names[i] = u.cfg.Name
	}
	marks, err := pin.Assign(names, p.mask, p.marks)
	if err != nil {
		// config rejects a mask without room for the uplinks.
		d.log.Error("assigning connection marks", "err", err)
		return 0
	}
	maps.Copy(p.marks, marks)
	return marks[name]
}

func (d *Daemon) configured(name string) bool {
	for _, u := range d.uplinks {
		if u.cfg.Name == name {
			return true
		}
	}
	return false
}

// pinsFirst says whether the next applyPins may change the table: then it
// runs before the routes are reconciled, so connections are marked before
// rules route by their mark. Otherwise it runs after them (it still checks
// the table), off the path from a kernel event to the new routes.
func (d *Daemon) pinsFirst(in []netops.Uplink) bool {
	if !d.pinOn() {
		return false
	}
	return d.pin.restore || !d.pin.applied || !d.pin.sameKey(d.uplinks, in)
}

// sameKey says whether the table would be built from what the last
// applyPins built it from: names, interfaces, marks (compared in place:
// this runs at every reconcile, for every uplink).
func (p *pinning) sameKey(ups []*uplink, in []netops.Uplink) bool {
	if len(p.key) != len(ups) {
		return false
	}
	for i, u := range ups {
		if pinKeyOf(u, in[i]) != p.key[i] {
			return false
		}
	}
	return true
}

// setKey records what applyPins built the table from.
func (p *pinning) setKey(ups []*uplink, in []netops.Uplink) {
	p.key = p.key[:0]
	for i, u := range ups {
		p.key = append(p.key, pinKeyOf(u, in[i]))
	}
}

// pinKeyOf is what the table takes of one uplink.
func pinKeyOf(u *uplink, in netops.Uplink) pin.Uplink {
	k := pin.Uplink{Name: u.cfg.Name, Mark: in.Mark}
	if u.link != nil {
		k.Ifname = u.link.Name
	}
	return k
}

// applyPins makes the kernel's nftables table match the uplinks and sets
// src_valid_mark on their interfaces; it runs at every reconcile.
func (d *Daemon) applyPins(in []netops.Uplink) error {
	if !d.pinOn() {
		return nil
	}
	p := d.pin
	// Apply keeps a copy: the buffer is reused at every reconcile.
	ups := p.ups[:0]
	linked := 0 // uplinks with a link, whose interface is in svmIdx
	var errs []error
	for i, u := range d.uplinks {
		pu := pin.Uplink{Name: u.cfg.Name, Mark: in[i].Mark}
		if u.link != nil {
			pu.Ifname = u.link.Name
			if old, ok := p.svmIdx[u.cfg.Name]; ok && old != u.link.Index {
				errs = append(errs, p.svm.Forget(old))
			}
			if err := p.svmOrig.note(u.link.Name); err != nil {
				d.log.Warn("cannot keep the original src_valid_mark for after a crash", "interface", u.link.Name, "err", err)
			}
			if err := p.svm.Set(u.link.Index, u.link.Name); err != nil {
				errs = append(errs, fmt.Errorf("src_valid_mark on %s: %w", u.link.Name, err))
			} else {
				p.svmIdx[u.cfg.Name] = u.link.Index
			}
			if _, ok := p.svmIdx[u.cfg.Name]; ok {
				linked++
			}
		}
		if pu.Mark != 0 {
			ups = append(ups, pu)
		}
	}
	p.ups = ups
	if len(p.svmIdx) > linked {
		// Some interface in svmIdx is no longer an uplink's.
		seen := make(map[string]bool, len(d.uplinks))
		for _, u := range d.uplinks {
			if u.link != nil {
				seen[u.cfg.Name] = true
			}
		}
		for name, idx := range p.svmIdx {
			if !seen[name] {
				delete(p.svmIdx, name)
				errs = append(errs, p.svm.Forget(idx))
			}
		}
	}
	start := time.Now()
	changed, err := p.table.Apply(ups)
	if err != nil {
		errs = append(errs, fmt.Errorf("apply nftables table: %w", err))
		return errors.Join(errs...)
	}
	took := time.Since(start).Round(time.Microsecond)
	switch {
	case changed && p.restore:
		p.restores++
		d.metrics.PinRestore()
		d.changed = true
		d.log.Warn("nftables table was removed or changed by someone else (a firewall reload?); restored", "took", took)
	case changed && !p.applied:
		d.log.Info("nftables table installed", "uplinks", len(ups), "took", took)
	case changed:
		d.log.Info("nftables table updated", "uplinks", len(ups), "took", took)
	case !p.applied:
		d.log.Info("nftables table adopted as the kernel has it", "uplinks", len(ups))
	}
	p.restore, p.applied = false, true
	p.setKey(d.uplinks, in)
	return errors.Join(errs...)
}

// flushUnpinned deletes, by mark (and family) and off the loop, the
// conntrack entries of every uplink whose fwmark rule of family fam the
// reconcile just removed (it became down or probing in that family), so
// its connections restart on a survivor. Other uplinks' entries, and the
// other family's, are never touched; flush_conntrack = false turns it off.
func (d *Daemon) flushUnpinned(in []netops.Uplink, fam family) {
	p := d.pin
	prev := &p.pinned
	if fam == ipv6 {
		prev = &p.pinned6
	}
	pinned := func(u *netops.Uplink) bool { return u.Usable && u.Mark != 0 && u.Index > 0 && u.Addr.IsValid() }
	if *prev != nil && !d.renumPending(fam) {
		// Nothing to flush when every pin stayed as it was: the common
		// reconcile, checked without building anything.
		same, n := true, 0
		for i := range in {
			if u := &in[i]; pinned(u) {
				n++
				if m, ok := (*prev)[u.Name]; !ok || m != u.Mark {
					same = false
					break
				}
			}
		}
		if same && n == len(*prev) {
			return
		}
	}
	now := make(map[string]uint32)
	for i := range in {
		if u := &in[i]; pinned(u) {
			now[u.Name] = u.Mark
		}
	}
	flush := unpinned(*prev, now)
	for name, mark := range *prev {
		if key := familyKey(name, fam); d.renum[key] {
			flush[name] = mark
			delete(d.renum, key)
		}
	}
	*prev = now
	for name, mark := range flush {
		if !d.cfg.Routing.FlushConntrack {
			d.log.Info("not flushing conntrack entries (flush_conntrack = false)", "uplink", name, "family", fam.String())
			continue
		}
		p.flusher.Flush(d.conntrackFamily(name, fam), mark, p.mask, func(deleted int, took time.Duration, err error) {
			// The flusher's goroutine: counters and logs only.
			d.metrics.ConntrackFlush(name, fam.String(), deleted, took, err)
			p.flushes.Add(1)
			if err != nil {
				p.flushErrs.Add(1)
				if !errors.Is(err, pin.ErrClosed) {
					d.log.Warn("flushing conntrack entries by mark", "uplink", name, "family", fam.String(), "mark", fmt.Sprintf("%#x", mark), "err", err)
				}
				return
			}
			p.flushed.Add(uint64(deleted))
			d.log.Info("conntrack entries flushed", "uplink", name, "family", fam.String(), "mark", fmt.Sprintf("%#x", mark),
				"deleted", deleted, "took", took.Round(time.Microsecond))
		})
	}
}

// conntrackFamily is the address family (unix.AF_INET, AF_INET6) of the
// conntrack entries a flush of uplink name's family fam deletes: both
// families (0) for an uplink without IPv6, as before IPv6 existed.
func (d *Daemon) conntrackFamily(name string, fam family) uint8 {
	switch {
	case fam == ipv6:
		return unix.AF_INET6
	case slices.ContainsFunc(d.uplinks, func(u *uplink) bool { return u.cfg.Name == name && u.v6 != nil }):
		return unix.AF_INET
	}
	return 0
}

// renumPending says whether an entity of family fam is in Daemon.renum.
func (d *Daemon) renumPending(fam family) bool {
	for key := range d.renum {
		if _, is6 := strings.CutSuffix(key, "/ipv6"); is6 == (fam == ipv6) {
			return true
		}
	}
	return false
}

// familyKey is the key of an entity in Daemon.renum: the uplink's name,
// with "/ipv6" for its IPv6 entity (uplink.label).
func familyKey(name string, fam family) string {
	if fam == ipv6 {
		return name + "/ipv6"
	}
	return name
}

// unpinned returns the uplinks (and marks) pinned in prev whose pin is gone
// in now: their fwmark rule went, or their mark changed.
func unpinned(prev, now map[string]uint32) map[string]uint32 {
	out := make(map[string]uint32)
	for name, mark := range prev {
		if now[name] != mark {
			out[name] = mark
		}
	}
	return out
}

// pinningStatus is what status shows of pinning.
func (d *Daemon) pinningStatus() status.Pinning {
	p := d.pin
	if p == nil {
		return status.Pinning{Reason: "not started"}
	}
	if p.table == nil {
		return status.Pinning{Reason: p.off}
	}
	return status.Pinning{
		On: true, Mask: fmt.Sprintf("%#x", p.mask), Restores: p.restores,
		Flushes: p.flushes.Load(), Flushed: p.flushed.Load(), FlushErrors: p.flushErrs.Load(),
	}
}

// closePinning stops the watch and the flusher. On a clean stop it
// removes the table and restores src_valid_mark; with keep (SIGUSR2) both
// stay for the next start. It runs once; later calls do nothing.
func (d *Daemon) closePinning() {
	p := d.pin
	if !d.pinOn() || p.closed {
		return
	}
	p.closed = true
	p.stopWatch()
	<-p.watchDone
	var errs []error
	if err := p.flusher.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close conntrack flusher: %w", err))
	}
	if !d.keep {
		if err := p.table.Remove(); err != nil {
			errs = append(errs, err)
		}
		if err := p.svm.Restore(); err != nil {
			errs = append(errs, fmt.Errorf("restore src_valid_mark: %w", err))
		}
		// The values before the first start, also after a crash.
		if err := p.svmOrig.restore(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := p.table.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close nftables socket: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		d.log.Error("stopping connection pinning", "err", err)
	}
}
