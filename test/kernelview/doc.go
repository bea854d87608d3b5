// Package kernelview reads a network namespace's routing state the way an
// administrator would, with iproute2's JSON output (`ip -j`) and an
// nftables listing, and checks it against what uplinkd's configuration and
// the uplinks' link states and health require (DESIGN.md, routing model
// v2). It shares no code with netops: it is the independent reader of the
// convergence and kill -9 tests, so a bug in the reconciler's idea of the
// kernel cannot hide itself.
//
// Read takes one snapshot; Want describes the required state; Diff lists
// every difference (missing, unexpected or duplicated rules, routes and
// nexthop objects, wrong group members or weights, the nftables table's
// presence). Leftovers lists whatever carries uplinkd's route protocol, for
// checking that a clean stop removed everything. Reading only: nothing here
// writes to the kernel.
package kernelview
