package pin

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// procConf is where the IPv4 per-interface sysctls of the caller's network
// namespace live (/proc/sys/net follows the namespace of the thread that
// opens the file). A variable for tests.
var procConf = "/proc/sys/net/ipv4/conf"

// SrcValidMark sets net.ipv4.conf.<if>.src_valid_mark=1 on uplink
// interfaces, so that strict reverse-path filtering (rp_filter=1) looks the
// source up with the packet's restored mark, through the uplink's own
// table, instead of dropping replies of connections pinned to an uplink
// other than the one main's default uses. It remembers each interface's
// previous value and puts it back on Restore (clean stop) or Forget.
//
// Interfaces are tracked by index, so a rename keeps its entry (the sysctl
// directory follows the device) and an interface that appears later is
// set when the caller calls Set for it. Not safe for concurrent use: the
// daemon's loop owns it.
//
// Once set, an interface's value is not read again until Recheck or
// RecheckAll: a reconcile of hundreds of uplinks would otherwise read as
// many files. The kernel sends no event when someone resets the value, so
// the caller rechecks on the events it has (link changes, resyncs).
type SrcValidMark struct {
	ifs map[int]svm
}

type svm struct {
	name string
	prev int
	set  bool // the value is known to be 1
}

// Set sets src_valid_mark=1 on the interface with index ifindex, now named
// ifname, remembering the previous value the first time it sees ifindex.
// It reads the value only when ifindex is new, renamed or rechecked, and
// writes again if someone reset it.
func (s *SrcValidMark) Set(ifindex int, ifname string) error {
	if s.ifs == nil {
		s.ifs = map[int]svm{}
	}
	e, known := s.ifs[ifindex]
	if known && e.set && e.name == ifname {
		return nil
	}
	cur, err := readSrcValidMark(ifname)
	if err != nil {
		return err
	}
	if !known {
		e.prev = cur
	}
	e.name, e.set = ifname, false
	s.ifs[ifindex] = e
	if cur != 1 {
		if err := writeSrcValidMark(ifname, 1); err != nil {
			return err
		}
	}
	e.set = true
	s.ifs[ifindex] = e
	return nil
}

// Recheck makes the next Set of ifindex read the value again.
func (s *SrcValidMark) Recheck(ifindex int) {
	if e, ok := s.ifs[ifindex]; ok {
		e.set = false
		s.ifs[ifindex] = e
	}
}

// RecheckAll makes the next Set of every interface read the value again.
func (s *SrcValidMark) RecheckAll() {
	for i := range s.ifs {
		s.Recheck(i)
	}
}

// Forget restores the previous value of ifindex's interface (when it still
// exists) and stops tracking it: the interface is no longer an uplink's,
// or is gone.
func (s *SrcValidMark) Forget(ifindex int) error {
	e, ok := s.ifs[ifindex]
	if !ok {
		return nil
	}
	delete(s.ifs, ifindex)
	return e.restore()
}

// Restore puts back the previous value on every tracked interface that
// still exists.
func (s *SrcValidMark) Restore() error {
	var errs []error
	for i, e := range s.ifs {
		if err := e.restore(); err != nil {
			errs = append(errs, err)
		}
		delete(s.ifs, i)
	}
	return errors.Join(errs...)
}

func (e svm) restore() error {
	if e.prev == 1 {
		return nil
	}
	err := writeSrcValidMark(e.name, e.prev)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // the interface is gone, and its setting with it
	}
	return err
}

// SetSrcValidMark sets src_valid_mark=1 on one interface and returns a
// function that restores the previous value.
func SetSrcValidMark(ifname string) (restore func() error, err error) {
	var s SrcValidMark
	if err := s.Set(0, ifname); err != nil {
		return nil, err
	}
	return s.Restore, nil
}

func srcValidMarkPath(ifname string) (string, error) {
	if ifname == "" || ifname == "." || ifname == ".." || strings.ContainsRune(ifname, '/') {
		return "", fmt.Errorf("bad interface name %q", ifname)
	}
	return procConf + "/" + ifname + "/src_valid_mark", nil
}

func readSrcValidMark(ifname string) (int, error) {
	p, err := srcValidMarkPath(ifname)
	if err != nil {
		return 0, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, fmt.Errorf("read src_valid_mark of %s: %w", ifname, err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", p, err)
	}
	return v, nil
}

func writeSrcValidMark(ifname string, v int) error {
	p, err := srcValidMarkPath(ifname)
	if err != nil {
		return err
	}
	if err := os.WriteFile(p, []byte(strconv.Itoa(v)), 0o644); err != nil {
		return fmt.Errorf("set src_valid_mark=%d on %s: %w", v, ifname, err)
	}
	return nil
}
