// Package tools runs the failover tools the bench compares in the lab's
// router namespace: uplinkd (the binary the tree builds, driven by a
// configuration file and observed from outside) and the seed (the
// if-up/if-down scripts and the 5-second ping daemon of the article uplinkd
// replaces, run as written with the lab's addresses).
package tools
