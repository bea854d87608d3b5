package hooks

import (
	"fmt"
	"os"
	"path/filepath"
)

// CheckProgram is what the Runner checks before it runs path: `uplinkd
// check` reports a hook that would be refused.
func CheckProgram(path string) error { return checkProgram(path) }

// checkProgram refuses a hook program that a user other than its owner
// and group could have replaced: one writable by others, or one in a
// directory (up to the root, the symlinks' targets included) that others
// may write without the sticky bit. uplinkd runs hooks as root. A program
// that cannot be examined is left to exec to report.
func checkProgram(path string) error {
	paths := []string{path}
	if real, err := filepath.EvalSymlinks(path); err == nil && real != path {
		paths = append(paths, real)
	}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil
		}
		if perm := fi.Mode().Perm(); perm&0o002 != 0 {
			return fmt.Errorf("%s is writable by any user (mode %#o)", p, perm)
		}
		for dir := filepath.Dir(p); ; dir = filepath.Dir(dir) {
			di, err := os.Stat(dir)
			if err == nil && di.Mode().Perm()&0o002 != 0 && di.Mode()&os.ModeSticky == 0 {
				return fmt.Errorf("%s is in %s, which any user may write (mode %#o, no sticky bit)", path, dir, di.Mode().Perm())
			}
			if dir == "/" || dir == "." {
				break
			}
		}
	}
	return nil
}
