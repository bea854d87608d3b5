package netops

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

const (
	hashPolicyPath = "/proc/sys/net/ipv4/fib_multipath_hash_policy"
	hashFieldsPath = "/proc/sys/net/ipv4/fib_multipath_hash_fields"
)

// Multipath hash policies of net.ipv4.fib_multipath_hash_policy. Nexthop
// groups, resilient or not, hash with the same policy.
const (
	HashL3     = 0 // source and destination address
	HashL4     = 1 // 5-tuple: the flows of one host spread over the uplinks
	HashCustom = 3 // the fields of net.ipv4.fib_multipath_hash_fields (Linux 5.12)
)

// HashFieldSrcIP is FIB_MULTIPATH_HASH_FIELD_SRC_IP of
// net.ipv4.fib_multipath_hash_fields: with policy HashCustom and only this
// field, every flow of one source address takes the same path.
const HashFieldSrcIP = 0x0001

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

// SetMultipathHash sets the network namespace's IPv4 multipath hash and
// returns the previous setting, so that it can be restored on exit.
func SetMultipathHash(h Hash) (prev Hash, err error) {
	if prev.Policy, err = readSysctl(hashPolicyPath); err != nil {
		return prev, err
	}
	if h.Fields != 0 {
		fields, err := readSysctl(hashFieldsPath)
		if err != nil {
			return prev, err
		}
		prev.Fields = uint32(fields)
		if err := writeSysctl(hashFieldsPath, int(h.Fields)); err != nil {
			return prev, fmt.Errorf("set multipath hash fields %#x: %w", h.Fields, err)
		}
	}
	if prev.Policy != h.Policy {
		if err := writeSysctl(hashPolicyPath, h.Policy); err != nil {
			return prev, fmt.Errorf("set multipath hash policy %d: %w", h.Policy, err)
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
