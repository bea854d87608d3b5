package probe

import "time"

// The engine of a Prober is driven from two sides: run sends what it
// schedules and lets time pass when the timer fires, and take feeds it the
// replies, in the goroutine that read them (the hub's reader, a drain, a
// TCP probe). Handling a reply where it was read, rather than handing it
// to run, saves a wake-up of run per reply; the lock is rarely contended
// (each reply is for one prober). Whoever holds the lock delivers the
// results it decided without waiting, so results leave in round order;
// only run waits for a slow reader.

// run sends what the engine schedules, lets time pass for it, takes the
// replies take could not handle at once, and delivers results in order,
// waiting for the reader when it is slow.
func (p *Prober) run() {
	defer close(p.runDone)
	defer p.timer.Stop()
	for {
		p.mu.Lock()
		res, ok := p.e.head()
		p.delivering = ok
		p.mu.Unlock()
		var out chan<- Result
		if ok {
			out = p.out
		}
		select {
		case <-p.stop:
			return
		case out <- res:
			p.mu.Lock()
			p.delivering = false
			p.e.pop()
			p.mu.Unlock()
		case <-p.kick:
			p.mu.Lock()
			p.delivering = false
			p.mu.Unlock()
		case r := <-p.replies:
			p.mu.Lock()
			p.delivering = false
			p.e.reply(r.id, r.target, r.at)
			p.takeQueued() // replies that arrived together, so Replies counts them
			p.rearm()
			p.mu.Unlock()
		case c := <-p.results:
			p.mu.Lock()
			p.delivering = false
			p.e.check(c.check, c.err, c.took)
			p.rearm()
			p.mu.Unlock()
		case <-p.timer.C:
			p.mu.Lock()
			p.delivering = false
			due := p.armed
			p.armed = time.Time{}
			p.mu.Unlock()
			// Before anything times out or the uplink is declared
			// silent, take in every reply the kernel holds, with the
			// time it arrived: a stall of this process (GC, scheduler)
			// must not pass for an outage. Time passes only to when
			// that holds: probers woken for the same instant share one
			// drain that began after it. The drain hands replies to
			// take, so it runs without the lock.
			upTo := p.drainSocket(due)
			p.mu.Lock()
			p.takeQueued()
			now := time.Now()
			for _, req := range p.e.step(now) {
				p.e.sent(req, p.send(req))
			}
			p.e.expire(upTo)
			p.rearm()
			p.mu.Unlock()
		}
	}
}

// take feeds the engine a reply of ours. When run (or another reply)
// holds the engine, the reply is queued for run instead: wait says whether
// to wait for room in the queue (the hub's reader, a TCP probe) or drop the
// reply when it is full (a drain; only a prober stalled for many intervals
// has a full queue).
func (p *Prober) take(r reply, wait bool) {
	if p.mu.TryLock() {
		if !p.stopped {
			p.e.reply(r.id, r.target, r.at)
			p.deliver()
			p.rearm()
		}
		p.mu.Unlock()
		return
	}
	if wait {
		select {
		case p.replies <- r:
		case <-p.stop:
		}
		return
	}
	select {
	case p.replies <- r:
	default:
	}
}

// takeQueued feeds the engine the replies queued for run. The caller holds
// the lock.
func (p *Prober) takeQueued() {
	for {
		select {
		case r := <-p.replies:
			p.e.reply(r.id, r.target, r.at)
		default:
			return
		}
	}
}

// deliver hands the decided results over as long as the reader takes them
// at once, and otherwise wakes run to wait for it, unless run is already
// waiting to deliver. The caller holds the lock.
func (p *Prober) deliver() {
	if p.delivering || p.stopped {
		return
	}
	for {
		res, ok := p.e.head()
		if !ok {
			return
		}
		select {
		case p.out <- res:
			p.e.pop()
		default:
			select {
			case p.kick <- struct{}{}:
			default:
			}
			return
		}
	}
}

// rearm sets the timer for when the engine next has work, if that
// changed. The caller holds the lock.
func (p *Prober) rearm() {
	if d := p.e.next(); !d.Equal(p.armed) {
		p.timer.Reset(time.Until(d))
		p.armed = d
	}
}
