// Package test holds uplinkd's end-to-end tests: each builds a fresh lab of
// network namespaces (package test/lab), runs the real uplinkd binary in the
// router namespace, breaks and repairs uplinks, and checks the kernel's
// routing state and the daemon's transitions. They need root; without it
// they skip, unless UPLINKD_REQUIRE_PRIV=1 turns the skip into a failure.
package test
