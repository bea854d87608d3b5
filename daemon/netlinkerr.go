package daemon

import (
	"time"

	"github.com/uplinkd/uplinkd/events"
)

// netlinkError records a failure to read the kernel's state or to keep
// the event subscription. Nothing installed is removed because of it: the
// caller retries with backoff. Transient errors (events.Transient) are
// expected under churn and logged as warnings, others as errors; both are
// counted and shown in status and metrics until a read succeeds.
func (d *Daemon) netlinkError(what string, err error) {
	transient := events.Transient(err)
	d.netlink.Errors++
	if transient {
		d.netlink.Transient++
	}
	d.netlink.LastError = what + ": " + err.Error()
	d.metrics.NetlinkError(transient)
	d.changed = true
	d.netlinkDelay = min(max(2*d.netlinkDelay, 100*time.Millisecond), 5*time.Second)
	log := d.log.Error
	if transient {
		log = d.log.Warn
	}
	log("cannot read the kernel's state; routing stays as installed, retrying", "what", what, "err", err,
		"transient", transient, "retry_in", d.netlinkDelay)
}

// netlinkOK clears the failure shown in status once a read succeeds.
func (d *Daemon) netlinkOK() {
	d.netlinkDelay = 0
	if d.netlink.LastError != "" {
		d.log.Info("kernel state read again")
		d.netlink.LastError = ""
		d.changed = true
	}
}
