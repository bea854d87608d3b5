// Command bench measures uplinkd beside the seed it replaces (the
// if-up/if-down scripts and the 5-second ping daemon of
// ../shared/seed/000_5d0123547500dfcb.txt) in the namespace lab of
// test/lab, and uplinkd's scale and cost rows, and writes the table
// (Markdown and JSON) and the plots into its output directory. `make bench`
// and `make bench-scale` run it as root; it only creates namespaces of its
// own and never changes the host's.
//
// It is its own Go module, so that its plotting library stays out of
// uplinkd's.
package main
