// Package oneline escapes control characters in text that comes from
// configuration, the kernel or the daemon's state (interface names,
// reasons, errors), so that it stays on one line wherever it is shown: a
// hook's environment, a status table on a terminal.
package oneline
