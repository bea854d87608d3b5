// Package sdnotify tells systemd about the daemon's state: the sd_notify
// protocol (one datagram per notification to the unix socket named by
// $NOTIFY_SOCKET) and the watchdog interval ($WATCHDOG_USEC). It needs no
// library: the protocol is a few lines of text.
//
// Outside systemd, $NOTIFY_SOCKET is unset and every call does nothing.
package sdnotify
