package config

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Error is one problem in a configuration file.
type Error struct {
	File string // the file name given to Load or Parse
	Line int    // 1-based; 0 when the problem has no place in the file
	// Key is the setting at fault, with arrays indexed from 0:
	// "probe.interval", "uplink[1].weight", "probe.targets[0]". Empty for
	// TOML syntax errors.
	Key string
	Msg string
}

// Error formats the problem as "FILE:LINE: KEY: MESSAGE", leaving out the
// line when it is unknown and the key when there is none.
func (e Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
	}
	if e.Key != "" {
		b.WriteString(": ")
		b.WriteString(e.Key)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in a configuration file, ordered by line.
// Load and Parse return it, never an empty one.
type Errors []Error

// Error prints every problem, one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find a single *Error.
func (es Errors) Unwrap() []error {
	errs := make([]error, len(es))
	for i := range es {
		errs[i] = &es[i]
	}
	return errs
}

// sortByLine orders problems by line, keeping the order in which problems on
// the same line were found. Problems without a line come first: they concern
// the file as a whole.
func (es Errors) sortByLine() {
	slices.SortStableFunc(es, func(a, b Error) int { return cmp.Compare(a.Line, b.Line) })
}
