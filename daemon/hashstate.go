package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/uplinkd/uplinkd/netops"
)

// hashStateFile, in [routing] state_dir, holds the multipath hash settings
// uplinkd found before it first changed them: "policy fields" of IPv4,
// then "policy fields" of IPv6 (absent while IPv6's hash is left alone: no
// uplink has IPv6, the kernel has no IPv6, or the file was written by a
// version without IPv6). It outlives a crash
// (and SIGUSR2), so the next run restores the originals on its clean stop
// instead of the values the crashed run set.
const hashStateFile = "multipath-hash"

// hashState sets the multipath hash of IPv4, and of IPv6 while some uplink
// has IPv6, and remembers the originals in dir.
type hashState struct {
	path string
	orig netops.Hash
	// orig6 is IPv6's original while IPv6's hash is uplinkd's (some
	// uplink has IPv6, or a crashed run left it set); nil while IPv6's
	// hash is left alone.
	orig6 *netops.Hash
	// warn says why the originals could not be saved: a state directory
	// that cannot be written only costs the crash safety. It also says
	// when IPv6's hash could not be set for lack of the sysctl.
	warn error
}

// setHash sets h for IPv4, and h.IPv6() for IPv6 when v6 (some uplink has
// IPv6), and returns how to restore the originals: those in the state file
// when an earlier run left them, else the current ones, which are then
// written there first. Without v6, an IPv6 original an earlier run left is
// restored at once: IPv6's hash is uplinkd's only while it routes IPv6.
func setHash(dir string, h netops.Hash, v6 bool) (*hashState, error) {
	s := &hashState{path: filepath.Join(dir, hashStateFile)}
	saved, saved6, found, err := readHashState(s.path)
	if err != nil {
		return nil, err
	}
	prev, err := netops.SetMultipathHash(h)
	if err != nil {
		return nil, err
	}
	s.orig, s.orig6 = prev, saved6
	if found {
		s.orig = saved
	}
	if err := s.family6(h, v6); err != nil {
		if _, rerr := netops.SetMultipathHash(prev); rerr != nil {
			err = errors.Join(err, fmt.Errorf("restore IPv4 multipath hash: %w", rerr))
		}
		return nil, err
	}
	if !found || saved6 != s.orig6 {
		s.save()
	}
	return s, nil
}

// family6 makes IPv6's hash h.IPv6() when v6, keeping its original first,
// or restores the original kept when not v6.
func (s *hashState) family6(h netops.Hash, v6 bool) error {
	if !v6 {
		if s.orig6 == nil {
			return nil
		}
		if _, err := netops.SetMultipathHashFor(netops.V6, *s.orig6); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("restore IPv6 multipath hash: %w", err)
		}
		s.orig6 = nil
		return nil
	}
	prev6, err := netops.SetMultipathHashFor(netops.V6, h.IPv6())
	switch {
	case errors.Is(err, fs.ErrNotExist):
		s.warn = errors.Join(s.warn, fmt.Errorf("IPv6 multipath hash left alone: %w", err))
	case err != nil:
		return err
	case s.orig6 == nil:
		s.orig6 = &prev6
	}
	return nil
}

// save writes the originals to the state file; a failure only costs the
// crash safety, and is kept in warn.
func (s *hashState) save() {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
		s.warn = errors.Join(s.warn, fmt.Errorf("state directory: %w", err))
	} else if err := writeFileAtomic(s.path, formatHashState(s.orig, s.orig6)); err != nil {
		s.warn = errors.Join(s.warn, err)
	}
}

// apply sets h on reload, for IPv4 and, when v6, for IPv6; a reload that
// removes the last uplink with IPv6 restores IPv6's original. The
// originals to restore stay those setHash found.
func (s *hashState) apply(h netops.Hash, v6 bool) error {
	had6 := s.orig6
	_, err := netops.SetMultipathHash(h)
	if err6 := s.family6(h, v6); err6 != nil {
		err = errors.Join(err, err6)
	}
	if s.orig6 != had6 {
		s.save()
	}
	return err
}

// restore sets the original hashes back and forgets them.
func (s *hashState) restore() error {
	_, err := netops.SetMultipathHash(s.orig)
	if s.orig6 != nil {
		if _, err6 := netops.SetMultipathHashFor(netops.V6, *s.orig6); err6 != nil {
			err = errors.Join(err, err6)
		}
	}
	if err != nil {
		return err // keep the file: the next run restores them
	}
	if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", s.path, err)
	}
	return nil
}

func formatHashState(h netops.Hash, h6 *netops.Hash) string {
	out := fmt.Sprintf("%d %d", h.Policy, h.Fields)
	if h6 != nil {
		out += fmt.Sprintf(" %d %d", h6.Policy, h6.Fields)
	}
	return out + "\n"
}

// readHashState reads the state file; h6 is nil when it holds IPv4's
// setting only.
func readHashState(path string) (h netops.Hash, h6 *netops.Hash, found bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return netops.Hash{}, nil, false, nil
	}
	if err != nil {
		return netops.Hash{}, nil, false, fmt.Errorf("read %s: %w", path, err)
	}
	f := strings.Fields(string(b))
	if len(f) != 2 && len(f) != 4 {
		return netops.Hash{}, nil, false, fmt.Errorf("%s: want \"policy fields [policy6 fields6]\", have %q", path, b)
	}
	parse := func(policy, fields string) (netops.Hash, error) {
		p, err1 := strconv.Atoi(policy)
		fl, err2 := strconv.ParseUint(fields, 10, 32)
		if err := errors.Join(err1, err2); err != nil {
			return netops.Hash{}, fmt.Errorf("%s: %w", path, err)
		}
		return netops.Hash{Policy: p, Fields: uint32(fl)}, nil
	}
	if h, err = parse(f[0], f[1]); err != nil {
		return netops.Hash{}, nil, false, err
	}
	if len(f) == 4 {
		v6, err := parse(f[2], f[3])
		if err != nil {
			return netops.Hash{}, nil, false, err
		}
		h6 = &v6
	}
	return h, h6, true, nil
}

func writeFileAtomic(path, data string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return nil
}
