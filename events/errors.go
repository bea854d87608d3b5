package events

import (
	"errors"

	"golang.org/x/sys/unix"
)

// ErrDumpInterrupted is returned by Dump when every attempt was
// interrupted by concurrent changes (NLM_F_DUMP_INTR).
var ErrDumpInterrupted = errors.New("dump interrupted by concurrent changes")

// Transient says whether err is a netlink error that goes away on its
// own: an interrupted system call or dump, a busy kernel, a receive buffer
// overrun, a momentary lack of memory. The caller retries with backoff
// and leaves the kernel's state as it is. Other errors are not expected to
// heal by themselves, but a running daemon still retries them (more
// slowly, and logs them as errors): only configuration errors at start
// are fatal.
func Transient(err error) bool {
	return errors.Is(err, ErrDumpInterrupted) ||
		errors.Is(err, unix.EINTR) || errors.Is(err, unix.EBUSY) || errors.Is(err, unix.ENOBUFS) ||
		errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.ENOMEM)
}
