package pin

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ErrClosed is passed to the callbacks of flushes still queued when the
// Flusher is closed.
var ErrClosed = errors.New("conntrack flusher closed")

// Flusher deletes the conntrack entries of one uplink, by mark, off the
// caller's goroutine: each request is one kernel-filtered ctnetlink delete
// (mark/mask and family), never a dump of the table into userspace. One
// worker goroutine runs the requests in order; Flush only queues, so the
// event loop never waits for the kernel, which needs tens of milliseconds
// for a table of some hundred thousand entries.
type Flusher struct {
	log       *slog.Logger
	conn      *conntrack.Conn
	countFile *os.File // nf_conntrack_count of the namespace; nil if it cannot be read

	mu     sync.Mutex
	queue  []flushReq
	closed bool
	wake   chan struct{} // capacity 1: the queue has work or the flusher closed
	done   chan struct{} // closed when the worker has returned
}

type flushReq struct {
	family     uint8
	mark, mask uint32
	done       func(deleted int, took time.Duration, err error)
}

// NewFlusher opens a ctnetlink socket in the network namespace whose file
// descriptor is netns (0: the caller's) and starts the worker.
func NewFlusher(netns int, log *slog.Logger) (*Flusher, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c, err := conntrack.Dial(&netlink.Config{NetNS: netns})
	if err != nil {
		return nil, fmt.Errorf("open conntrack socket: %w", err)
	}
	cf, err := openInNetNS(netns, conntrackCountPath)
	if err != nil {
		log.Warn("cannot read the conntrack entry count; flushes will not say how many entries they deleted", "err", err)
	}
	f := &Flusher{log: log, conn: c, countFile: cf, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go f.run()
	return f, nil
}

// Flush queues the deletion of the entries whose mark, masked with mask,
// equals mark, of one address family (unix.AF_INET or unix.AF_INET6) or of
// both (0). done, if not nil, is called from the worker goroutine when the
// request has run (it must not block: hand the result to the loop with a
// non-blocking send or a goroutine of its own). deleted is the drop of the
// kernel's entry count over the request, exact on a quiet table and an
// estimate while other connections start and end (0 when the count
// cannot be read: NewFlusher logs that once); took is the time of the
// kernel request alone.
func (f *Flusher) Flush(family uint8, mark, mask uint32, done func(deleted int, took time.Duration, err error)) {
	r := flushReq{family: family, mark: mark, mask: mask, done: done}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		r.finish(0, 0, ErrClosed)
		return
	}
	f.queue = append(f.queue, r)
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Close stops accepting requests, fails those still queued with ErrClosed,
// waits for the one running and closes the socket.
func (f *Flusher) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		<-f.done
		return nil
	}
	f.closed = true
	dropped := f.queue
	f.queue = nil
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
	<-f.done
	for _, r := range dropped {
		r.finish(0, 0, ErrClosed)
	}
	err := f.conn.Close()
	if f.countFile != nil {
		err = errors.Join(err, f.countFile.Close())
	}
	return err
}

func (f *Flusher) run() {
	defer close(f.done)
	for {
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			return
		}
		if len(f.queue) == 0 {
			f.mu.Unlock()
			<-f.wake
			continue
		}
		r := f.queue[0]
		f.queue = f.queue[1:]
		f.mu.Unlock()
		deleted, took, err := f.flush(r)
		if err != nil {
			f.log.Warn("conntrack flush by mark failed", "mark", fmt.Sprintf("%#x/%#x", r.mark, r.mask), "family", familyName(r.family), "err", err)
		} else {
			f.log.Info("conntrack entries deleted by mark", "mark", fmt.Sprintf("%#x/%#x", r.mark, r.mask), "family", familyName(r.family), "deleted", deleted, "took", took)
		}
		r.finish(deleted, took, err)
	}
}

func (r flushReq) finish(deleted int, took time.Duration, err error) {
	if r.done != nil {
		r.done(deleted, took, err)
	}
}

// flush runs one request: one CTA_FILTER'd delete, between two reads of
// the kernel's entry count.
func (f *Flusher) flush(r flushReq) (int, time.Duration, error) {
	filter := conntrack.NewFilter().Mark(r.mark).MarkMask(r.mask)
	switch r.family {
	case 0:
	case unix.AF_INET:
		filter = filter.Family(netfilter.ProtoIPv4)
	case unix.AF_INET6:
		filter = filter.Family(netfilter.ProtoIPv6)
	default:
		return 0, 0, fmt.Errorf("conntrack flush: unknown address family %d", r.family)
	}
	before, berr := f.count()
	start := time.Now()
	err := f.conn.FlushFilter(filter)
	took := time.Since(start)
	if err != nil {
		return 0, took, fmt.Errorf("delete conntrack entries with mark %#x/%#x: %w", r.mark, r.mask, err)
	}
	after, aerr := f.count()
	if berr != nil || aerr != nil {
		return 0, took, nil
	}
	if after > before {
		return 0, took, nil
	}
	return int(before - after), took, nil
}

// count returns the number of conntrack entries of the namespace, read
// from its net.netfilter.nf_conntrack_count. (ctnetlink's statistics
// request, conntrack's StatsGlobal, gets no answer on this kernel.)
func (f *Flusher) count() (int, error) {
	if f.countFile == nil {
		return 0, errors.New("no conntrack count")
	}
	b := make([]byte, 32)
	n, err := f.countFile.ReadAt(b, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("read %s: %w", conntrackCountPath, err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", conntrackCountPath, err)
	}
	return v, nil
}

const conntrackCountPath = "/proc/sys/net/netfilter/nf_conntrack_count"

// openInNetNS opens path on a thread inside the network namespace fd (0:
// the caller's): a /proc/sys/net file keeps the namespace it was opened in.
func openInNetNS(fd int, path string) (*os.File, error) {
	if fd == 0 {
		return os.Open(path)
	}
	type result struct {
		f   *os.File
		err error
	}
	res := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			res <- result{nil, fmt.Errorf("current network namespace: %w", err)}
			return
		}
		defer orig.Close()
		if err := netns.Set(netns.NsHandle(fd)); err != nil {
			res <- result{nil, fmt.Errorf("enter network namespace: %w", err)} // thread stays locked: discarded
			return
		}
		f, err := os.Open(path)
		if serr := netns.Set(orig); serr != nil {
			if f != nil {
				_ = f.Close()
			}
			res <- result{nil, fmt.Errorf("return from network namespace: %w", serr)}
			return
		}
		runtime.UnlockOSThread()
		res <- result{f, err}
	}()
	r := <-res
	return r.f, r.err
}

func familyName(f uint8) string {
	switch f {
	case unix.AF_INET:
		return "ipv4"
	case unix.AF_INET6:
		return "ipv6"
	}
	return "all"
}
