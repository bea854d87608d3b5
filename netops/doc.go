// Package netops turns uplinkd's view of the uplinks into kernel routing
// state, in two halves.
//
// Plan is pure: from the settings and each uplink's observed link, address
// and health it computes the desired per-uplink tables, source rules, the
// suppress rule and the weighted default route of the balance table. It is
// unit-tested without root.
//
// Reconciler is the only code in uplinkd that writes routes and rules. It
// lists what the kernel has, replaces what differs from the plan and deletes
// what carries uplinkd's route protocol but is no longer desired, so running
// it twice changes nothing, foreign deletions are repaired and a restart
// after a crash adopts what the previous run left.
package netops
