// Package config reads uplinkd's TOML configuration file into a validated
// Config.
//
// Reading happens in two stages. The file is first decoded into raw structs
// that mirror it key for key and record, for every key, whether it was
// present and whether its value had the right TOML type. The raw values are
// then checked and converted into Config, with real types (netip.Addr,
// time.Duration) and defaults for absent keys.
//
// The checks do not stop at the first problem: Load and Parse report every
// problem in the file at once, as Errors, each with its line and key
// ("uplinkd.toml:14: uplink[1].weight: 0 is out of range (1..256)"), so an
// operator can fix a file in one pass. Unknown keys are errors, because a
// misspelt key that is silently ignored leaves a router running on a
// default nobody chose.
//
// The reference configuration, etc/uplinkd.toml in the repository,
// documents every key; a test parses it, so it cannot drift from the code.
package config
