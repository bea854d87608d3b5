package netops

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

const hashPolicyPath = "/proc/sys/net/ipv4/fib_multipath_hash_policy"

// Multipath hash policies of net.ipv4.fib_multipath_hash_policy.
const (
	HashL3 = 0 // source and destination address
	HashL4 = 1 // 5-tuple: the flows of one host spread over the uplinks
)

// SetMultipathHash sets the network namespace's IPv4 multipath hash policy
// and returns the previous one, so it can be restored on exit.
func SetMultipathHash(policy int) (prev int, err error) {
	b, err := os.ReadFile(hashPolicyPath)
	if err != nil {
		return 0, fmt.Errorf("read multipath hash policy: %w", err)
	}
	prev, err = strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", hashPolicyPath, err)
	}
	if prev == policy {
		return prev, nil
	}
	if err := os.WriteFile(hashPolicyPath, []byte(strconv.Itoa(policy)), 0o644); err != nil {
		return prev, fmt.Errorf("set multipath hash policy %d: %w", policy, err)
	}
	return prev, nil
}
