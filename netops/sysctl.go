package netops

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// hashSysctl is the path of family f's multipath hash sysctl name
// (fib_multipath_hash_policy or fib_multipath_hash_fields).
func hashSysctl(f Family, name string) string {
	dir := "ipv4"
	if f.norm() == V6 {
		dir = "ipv6"
	}
	return "/proc/sys/net/" + dir + "/" + name
}

// Multipath hash policies of net.ipv4.fib_multipath_hash_policy (and
// net.ipv6's, where 0 and 1 differ: see Hash.IPv6). Nexthop groups,
// resilient or not, hash with the same policy.
const (
	HashL3     = 0 // source and destination address
	HashL4     = 1 // 5-tuple: the flows of one host spread over the uplinks
	HashCustom = 3 // the fields of net.ipv4.fib_multipath_hash_fields (Linux 5.12)
)

// Fields of fib_multipath_hash_fields (FIB_MULTIPATH_HASH_FIELD_* of the
// kernel's include/net/ip_fib.h; ABI): which header fields the custom
// policy hashes.
const (
	// HashFieldSrcIP alone, with policy HashCustom, keeps every flow of
	// one source address on one path.
	HashFieldSrcIP     = 0x0001
	HashFieldDstIP     = 0x0002
	HashFieldIPProto   = 0x0004
	HashFieldFlowLabel = 0x0008 // IPv6 only; uplinkd never hashes it
	HashFieldSrcPort   = 0x0010
	HashFieldDstPort   = 0x0020
)

// Hash is a multipath hash setting.
type Hash struct {
	Policy int
	// Fields is used with HashCustom only; 0 leaves the fields alone.
	Fields uint32
}

// Hashes of uplinkd's [routing] hash setting.
var (
	HashFlows   = Hash{Policy: HashL4}                             // "l4"
	HashHosts   = Hash{Policy: HashL3}                             // "l3"
	HashSources = Hash{Policy: HashCustom, Fields: HashFieldSrcIP} // "source": sticky mode
)

// IPv6 returns the IPv6 hash that does what IPv4 hash h does. IPv6's
// policy 0 hashes the flow label, which Linux changes when TCP times out
// a retransmission (net.ipv6.auto_flowlabels, txhash rethink), so a
// connection would jump to another uplink; every one of uplinkd's hashes
// maps to the custom policy with explicit fields instead: l4 to source,
// destination, protocol and ports; l3 to the addresses; source to the
// source address. Any other setting (a restored original) is returned
// as it is.
func (h Hash) IPv6() Hash {
	switch h {
	case HashFlows:
		return Hash{Policy: HashCustom, Fields: HashFieldSrcIP | HashFieldDstIP | HashFieldIPProto | HashFieldSrcPort | HashFieldDstPort}
	case HashHosts:
		return Hash{Policy: HashCustom, Fields: HashFieldSrcIP | HashFieldDstIP}
	case HashSources:
		return Hash{Policy: HashCustom, Fields: HashFieldSrcIP}
	}
	return h
}

// SetMultipathHash sets the network namespace's IPv4 multipath hash and
// returns the previous setting, so that it can be restored on exit.
func SetMultipathHash(h Hash) (prev Hash, err error) { return SetMultipathHashFor(V4, h) }

// SetMultipathHashFor sets family f's multipath hash of the caller's
// network namespace (net.ipv4 or net.ipv6 fib_multipath_hash_policy and,
// when h.Fields is set, fib_multipath_hash_fields) and returns the
// previous setting. An error wrapping fs.ErrNotExist means the kernel has
// no such sysctl (IPv6 disabled, or no custom hash).
func SetMultipathHashFor(f Family, h Hash) (prev Hash, err error) {
	policyPath, fieldsPath := hashSysctl(f, "fib_multipath_hash_policy"), hashSysctl(f, "fib_multipath_hash_fields")
	if prev.Policy, err = readSysctl(policyPath); err != nil {
		return prev, err
	}
	if h.Fields != 0 {
		fields, err := readSysctl(fieldsPath)
		if err != nil {
			return prev, err
		}
		prev.Fields = uint32(fields)
		if err := writeSysctl(fieldsPath, int(h.Fields)); err != nil {
			return prev, fmt.Errorf("set %s multipath hash fields %#x: %w", f, h.Fields, err)
		}
	}
	if prev.Policy != h.Policy {
		if err := writeSysctl(policyPath, h.Policy); err != nil {
			return prev, fmt.Errorf("set %s multipath hash policy %d: %w", f, h.Policy, err)
		}
	}
	return prev, nil
}

func readSysctl(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", path, err)
	}
	return n, nil
}

func writeSysctl(path string, v int) error {
	return os.WriteFile(path, []byte(strconv.Itoa(v)), 0o644)
}
