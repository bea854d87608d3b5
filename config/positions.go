package config

import (
	"strconv"
	"strings"
)

// positions says on which line each key, table header and array element of
// a TOML document starts.
//
// BurntSushi/toml keeps key positions to itself, and its key names
// ("uplink.weight") do not say which [[uplink]] a key belongs to, so the
// document is scanned a second time here. The scanner runs only on documents
// the toml package has accepted; it checks nothing and, on anything it does
// not understand, moves on rather than fails.
type positions struct {
	// lines maps a path to its line. Paths index arrays from 0:
	// "routing", "probe.interval", "uplink[1]", "uplink[1].weight",
	// "probe.targets[0]".
	lines map[string]int
	// defs is every key and table header in document order, array elements
	// excepted.
	defs []definition
}

// definition is a key or table header as written in the document.
type definition struct {
	path    string // "uplink[1].wieght"
	generic string // without array indexes, as MetaData names it: "uplink.wieght"
	line    int
}

// line returns the line of path or, when path is not in the document (a
// missing key, say), of the closest enclosing table, key or array. It
// returns 0 when nothing encloses path.
func (p positions) line(path string) int {
	for path != "" {
		if l, ok := p.lines[path]; ok {
			return l
		}
		path = parentPath(path)
	}
	return 0
}

// parentPath strips the last key or index from path.
func parentPath(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndexByte(path, '['); i > 0 {
			return path[:i]
		}
	}
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
}

func joinPath(prefix string, keys ...string) string {
	for _, k := range keys {
		if prefix != "" {
			prefix += "."
		}
		prefix += k
	}
	return prefix
}

func indexPath(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

type scanner struct {
	src  string
	i    int
	line int
	pos  positions
	// arrays counts the [[tables]] seen so far for each path.
	arrays map[string]int
}

func scanPositions(src string) positions {
	s := &scanner{
		src:    src,
		line:   1,
		pos:    positions{lines: make(map[string]int)},
		arrays: make(map[string]int),
	}
	table, generic := "", ""
	for {
		s.skipBlank(true)
		if s.eof() {
			return s.pos
		}
		start, line := s.i, s.line
		if s.peek() == '[' {
			s.advance()
			array := s.peek() == '['
			if array {
				s.advance()
			}
			keys := s.keys()
			if len(keys) == 0 {
				s.skipLine()
				continue
			}
			for s.peek() == ']' {
				s.advance()
			}
			generic = joinPath("", keys...)
			if array {
				base := joinPath(s.resolve(keys[:len(keys)-1]), keys[len(keys)-1])
				n := s.arrays[base]
				s.arrays[base] = n + 1
				table = indexPath(base, n)
			} else {
				table = s.resolve(keys)
			}
			s.define(table, generic, line)
			continue
		}
		keys := s.keys()
		if len(keys) == 0 || s.peek() != '=' {
			s.skipLine()
		} else {
			s.advance()
			s.keyValue(table, generic, keys, line)
		}
		if s.i == start {
			s.advance()
		}
	}
}

// resolve turns the keys of a table header into a path, indexing every
// prefix that names an array of tables with its latest element: after a
// second [[uplink]], [uplink.x] is "uplink[1].x".
func (s *scanner) resolve(keys []string) string {
	path := ""
	for _, k := range keys {
		path = joinPath(path, k)
		if n, ok := s.arrays[path]; ok {
			path = indexPath(path, n-1)
		}
	}
	return path
}

func (s *scanner) define(path, generic string, line int) {
	s.pos.defs = append(s.pos.defs, definition{path: path, generic: generic, line: line})
	s.record(path, line)
}

func (s *scanner) record(path string, line int) {
	if _, ok := s.pos.lines[path]; !ok {
		s.pos.lines[path] = line
	}
}

// keyValue records a key (after its "=") and scans its value.
func (s *scanner) keyValue(table, generic string, keys []string, line int) {
	path := joinPath(table, keys...)
	s.define(path, joinPath(generic, keys...), line)
	s.value(path, joinPath(generic, keys...))
}

// value scans one value, recording array elements and inline-table keys.
func (s *scanner) value(path, generic string) {
	s.skipBlank(false)
	switch s.peek() {
	case '"', '\'':
		s.str()
	case '[':
		s.advance()
		for n := 0; !s.eof(); {
			s.skipBlank(true)
			switch s.peek() {
			case ']':
				s.advance()
				return
			case ',':
				s.advance()
				continue
			}
			start := s.i
			elem := indexPath(path, n)
			n++
			s.record(elem, s.line)
			s.value(elem, generic)
			if s.i == start {
				s.advance()
			}
		}
	case '{':
		s.advance()
		for !s.eof() {
			s.skipBlank(true)
			switch s.peek() {
			case '}':
				s.advance()
				return
			case ',':
				s.advance()
				continue
			}
			start, line := s.i, s.line
			if keys := s.keys(); len(keys) > 0 && s.peek() == '=' {
				s.advance()
				s.keyValue(path, generic, keys, line)
			}
			if s.i == start {
				s.advance()
			}
		}
	default: // number, boolean, date: up to the next delimiter
		for !s.eof() && !strings.ContainsRune(",]}#\n", rune(s.peek())) {
			s.advance()
		}
	}
}

// keys scans a dotted key up to (not including) the "=" or "]" after it.
func (s *scanner) keys() []string {
	var keys []string
	for {
		s.skipBlank(false)
		switch c := s.peek(); {
		case c == '"' || c == '\'':
			keys = append(keys, s.str())
		case isBareKeyByte(c):
			start := s.i
			for !s.eof() && isBareKeyByte(s.peek()) {
				s.advance()
			}
			keys = append(keys, s.src[start:s.i])
		default:
			return keys
		}
		s.skipBlank(false)
		if s.peek() != '.' {
			return keys
		}
		s.advance()
	}
}

func isBareKeyByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '_' || c == '-' || c >= 0x80
}

// str scans a basic or literal string, single- or multi-line, and returns
// its content. Escapes are decoded only as far as keys need it.
func (s *scanner) str() string {
	quote := s.peek()
	if strings.HasPrefix(s.src[s.i:], strings.Repeat(string(quote), 3)) {
		s.i += 3
		delim := strings.Repeat(string(quote), 3)
		for !s.eof() && !strings.HasPrefix(s.src[s.i:], delim) {
			if quote == '"' && s.peek() == '\\' {
				s.advance()
			}
			s.advance()
		}
		s.i = min(s.i+3, len(s.src))
		// Up to two quotes may end the content right before the delimiter.
		for range 2 {
			if s.peek() == quote {
				s.advance()
			}
		}
		return ""
	}
	s.advance()
	start := s.i
	for !s.eof() && s.peek() != quote && s.peek() != '\n' {
		if quote == '"' && s.peek() == '\\' {
			s.advance()
		}
		s.advance()
	}
	raw := s.src[start:min(s.i, len(s.src))]
	if s.peek() == quote {
		s.advance()
	}
	if quote == '"' && strings.ContainsRune(raw, '\\') {
		if u, err := strconv.Unquote(`"` + raw + `"`); err == nil {
			return u
		}
	}
	return raw
}

// skipBlank skips spaces, tabs, comments and, when newlines is set, line
// ends.
func (s *scanner) skipBlank(newlines bool) {
	for !s.eof() {
		switch s.peek() {
		case ' ', '\t', '\r':
			s.advance()
		case '\n':
			if !newlines {
				return
			}
			s.advance()
		case '#':
			for !s.eof() && s.peek() != '\n' {
				s.advance()
			}
		default:
			return
		}
	}
}

func (s *scanner) skipLine() {
	for !s.eof() && s.peek() != '\n' {
		s.advance()
	}
}

func (s *scanner) eof() bool { return s.i >= len(s.src) }

// peek returns the current byte, 0 at the end.
func (s *scanner) peek() byte {
	if s.eof() {
		return 0
	}
	return s.src[s.i]
}

func (s *scanner) advance() {
	if s.eof() {
		return
	}
	if s.src[s.i] == '\n' {
		s.line++
	}
	s.i++
}
