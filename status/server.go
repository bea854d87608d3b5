package status

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Op is what a Request asks the event loop for.
type Op int

const (
	OpStatus Op = iota // a Snapshot
	OpReload           // re-read the configuration; a ReloadResult
)

// Request is a question for the daemon's event loop. The loop sends
// exactly one Reply on Reply, which has room for it, so it never blocks.
type Request struct {
	Op Op
	// After makes an OpStatus request a long poll: the loop answers once
	// its snapshot's Version is greater than After. 0 asks for now.
	After uint64
	// Done is closed when the asker has gone; the loop may then forget a
	// parked request without answering.
	Done  <-chan struct{}
	Reply chan<- Reply
}

// Reply is the loop's answer to a Request.
type Reply struct {
	Snapshot *Snapshot
	Reload   *ReloadResult
}

// Waiters holds the long-poll requests the loop has parked. It belongs to
// the loop and is not safe for concurrent use.
type Waiters struct {
	reqs []Request
}

// Park keeps r until the next Release, and forgets requests whose askers
// have gone.
func (w *Waiters) Park(r Request) {
	w.reqs = append(w.live(), r)
}

// Release answers every parked request with s.
func (w *Waiters) Release(s *Snapshot) {
	for _, r := range w.live() {
		r.Reply <- Reply{Snapshot: s}
	}
	w.reqs = nil
}

// Len is the number of parked requests.
func (w *Waiters) Len() int { return len(w.reqs) }

func (w *Waiters) live() []Request {
	out := w.reqs[:0]
	for _, r := range w.reqs {
		select {
		case <-r.Done:
		default:
			out = append(out, r)
		}
	}
	clear(w.reqs[len(out):])
	return out
}

// request and response are the lines of the socket protocol.
type request struct {
	Op string `json:"op"` // "status", "watch", "reload"
}

type response struct {
	Status *Snapshot     `json:"status,omitempty"`
	Reload *ReloadResult `json:"reload,omitempty"`
	Error  string        `json:"error,omitempty"`
}

// loopTimeout bounds the wait for the event loop; a loop that does not
// answer in time is reported as busy rather than hanging clients. A
// variable for tests.
var loopTimeout = 5 * time.Second

// Timeouts of the server.
const (
	// ioTimeout bounds reading a request and writing a response.
	ioTimeout = 5 * time.Second
	// refresh is how often a watch gets a new snapshot when nothing
	// changed, for the probe figures.
	refresh = time.Second
)

// Server serves the status socket.
type Server struct {
	ln   *net.UnixListener
	path string
	reqs chan<- Request
	log  *slog.Logger
}

// Listen creates the socket at path, with mode 0660, and its directory if
// missing. A socket left behind by a process that died is replaced; one
// that still answers is an error, since another uplinkd is running.
// Requests go to reqs, which the event loop reads.
func Listen(path string, reqs chan<- Request, log *slog.Logger) (*Server, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("status socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("status socket %s: exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("status socket %s: another uplinkd is running (it answers on the socket)", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale status socket: %w", err)
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("status socket: %w", err)
	}
	// Until this chmod the umask applies; connecting needs write
	// permission, which the usual umasks deny to others anyway.
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("status socket: %w", err)
	}
	return &Server{ln: ln, path: path, reqs: reqs, log: log}, nil
}

// Serve answers connections until ctx is done, then closes the socket and
// its connections, removes the socket file and returns once every
// connection's goroutine has ended.
func (s *Server) Serve(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { s.ln.Close() })
	defer stop()
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("status socket stopped", "err", err)
				s.ln.Close()
			}
			return
		}
		wg.Go(func() { s.handle(ctx, c) })
	}
}

// handle answers one connection.
func (s *Server) handle(ctx context.Context, c *net.UnixConn) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()

	_ = c.SetReadDeadline(time.Now().Add(ioTimeout))
	r := bufio.NewReader(c)
	line, err := r.ReadBytes('\n')
	if err != nil {
		return
	}
	var req request
	if err := json.Unmarshal(line, &req); err != nil {
		s.send(c, response{Error: "bad request: " + err.Error()})
		return
	}
	switch req.Op {
	case "status", "reload":
		op := OpStatus
		if req.Op == "reload" {
			op = OpReload // reading and applying a file is quick, as a snapshot is
		}
		rep, err := s.ask(ctx, Request{Op: op}, loopTimeout)
		if err != nil {
			s.send(c, response{Error: err.Error()})
			return
		}
		s.send(c, response{Status: rep.Snapshot, Reload: rep.Reload})
	case "watch":
		// The client only reads from now on: its end of file means it
		// has gone.
		_ = c.SetReadDeadline(time.Time{})
		var reader sync.WaitGroup
		reader.Go(func() {
			_, _ = r.ReadByte()
			cancel()
		})
		s.watch(ctx, c)
		c.Close()
		reader.Wait()
	default:
		s.send(c, response{Error: fmt.Sprintf("unknown op %q", req.Op)})
	}
}

// watch sends a snapshot now, then one after every change, and at least
// one per refresh period, until the client goes or ctx is done.
func (s *Server) watch(ctx context.Context, c *net.UnixConn) {
	var version uint64
	for {
		rep, err := s.ask(ctx, Request{Op: OpStatus, After: version}, refresh)
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			// Nothing changed within the period: send fresh figures.
			rep, err = s.ask(ctx, Request{Op: OpStatus}, loopTimeout)
		}
		if err != nil {
			if ctx.Err() == nil {
				s.send(c, response{Error: err.Error()})
			}
			return
		}
		if !s.send(c, response{Status: rep.Snapshot}) {
			return
		}
		version = rep.Snapshot.Version
	}
}

// ask hands req to the event loop and waits up to timeout for the reply.
func (s *Server) ask(ctx context.Context, req Request, timeout time.Duration) (Reply, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	reply := make(chan Reply, 1)
	req.Reply, req.Done = reply, ctx.Done()
	select {
	case s.reqs <- req:
	case <-ctx.Done():
		return Reply{}, busy(ctx, timeout)
	}
	select {
	case rep := <-reply:
		return rep, nil
	case <-ctx.Done():
		return Reply{}, busy(ctx, timeout)
	}
}

func busy(ctx context.Context, timeout time.Duration) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && timeout == loopTimeout {
		return fmt.Errorf("uplinkd's event loop did not answer within %v", loopTimeout)
	}
	return ctx.Err()
}

// send writes one response line; false when the client is gone.
func (s *Server) send(c *net.UnixConn, resp response) bool {
	b, err := json.Marshal(resp)
	if err != nil {
		s.log.Error("status: encode response", "err", err)
		return false
	}
	_ = c.SetWriteDeadline(time.Now().Add(ioTimeout))
	_, err = c.Write(append(b, '\n'))
	return err == nil
}

// Close closes the socket of a server that is not serving.
func (s *Server) Close() error { return s.ln.Close() }
