package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// svmStateFile, in [routing] state_dir, holds the src_valid_mark each
// uplink interface had before uplinkd first set it: "ifname value" lines.
// Like the hash policy's, it outlives a crash or SIGUSR2, so the clean stop
// of a later run restores the value found before the first start, not the
// 1 the earlier run left.
const svmStateFile = "src-valid-mark"

var procConf = "/proc/sys/net/ipv4/conf"

type svmState struct {
	path string
	orig map[string]int
	warn error // why the originals cannot be kept
}

func loadSVMState(dir string) *svmState {
	s := &svmState{path: filepath.Join(dir, svmStateFile), orig: make(map[string]int)}
	b, err := os.ReadFile(s.path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.warn = err
		}
		return s
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		if v, err := strconv.Atoi(f[1]); err == nil {
			s.orig[f[0]] = v
		}
	}
	return s
}

// note remembers ifname's current value the first time it is seen.
func (s *svmState) note(ifname string) error {
	if _, ok := s.orig[ifname]; ok {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(procConf, ifname, "src_valid_mark"))
	if err != nil {
		return fmt.Errorf("read src_valid_mark of %s: %w", ifname, err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("src_valid_mark of %s: %w", ifname, err)
	}
	s.orig[ifname] = v
	return s.save()
}

func (s *svmState) save() error {
	names := make([]string, 0, len(s.orig))
	for n := range s.orig {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s %d\n", n, s.orig[n])
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	return writeFileAtomic(s.path, b.String())
}

// restore writes the original values back (interfaces that are gone are
// skipped) and forgets them.
func (s *svmState) restore() error {
	var errs []error
	for n, v := range s.orig {
		err := os.WriteFile(filepath.Join(procConf, n, "src_valid_mark"), []byte(strconv.Itoa(v)), 0o644)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("restore src_valid_mark of %s: %w", n, err))
		}
	}
	if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
