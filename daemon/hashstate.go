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

// hashStateFile, in [routing] state_dir, holds the multipath hash setting
// uplinkd found before it first changed it: "policy fields". It outlives
// a crash (and SIGUSR2), so the next run restores the original on its
// clean stop instead of the value the crashed run set.
const hashStateFile = "multipath-hash"

// hashState sets the multipath hash and remembers the original in dir.
type hashState struct {
	path string
	orig netops.Hash
	// warn says why the original could not be saved: a state directory
	// that cannot be written only costs the crash safety.
	warn error
}

// setHash sets h and returns how to restore the original: the one in the
// state file when an earlier run left it, else the current one, which is
// then written there first.
func setHash(dir string, h netops.Hash) (*hashState, error) {
	s := &hashState{path: filepath.Join(dir, hashStateFile)}
	saved, found, err := readHashState(s.path)
	if err != nil {
		return nil, err
	}
	prev, err := netops.SetMultipathHash(h)
	if err != nil {
		return nil, err
	}
	if found {
		s.orig = saved
		return s, nil
	}
	s.orig = prev
	if err := os.MkdirAll(dir, 0o755); err != nil {
		s.warn = fmt.Errorf("state directory: %w", err)
	} else if err := writeFileAtomic(s.path, fmt.Sprintf("%d %d\n", prev.Policy, prev.Fields)); err != nil {
		s.warn = err
	}
	return s, nil
}

// restore sets the original hash back and forgets it.
func (s *hashState) restore() error {
	if _, err := netops.SetMultipathHash(s.orig); err != nil {
		return err
	}
	if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", s.path, err)
	}
	return nil
}

func readHashState(path string) (netops.Hash, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return netops.Hash{}, false, nil
	}
	if err != nil {
		return netops.Hash{}, false, fmt.Errorf("read %s: %w", path, err)
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return netops.Hash{}, false, fmt.Errorf("%s: want \"policy fields\", have %q", path, b)
	}
	policy, err1 := strconv.Atoi(f[0])
	fields, err2 := strconv.ParseUint(f[1], 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return netops.Hash{}, false, fmt.Errorf("%s: %w", path, err)
	}
	return netops.Hash{Policy: policy, Fields: uint32(fields)}, true, nil
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
