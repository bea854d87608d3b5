#!/bin/sh
# fuzz.sh GO PKG TARGET FUZZTIME: runs one fuzz target (make fuzz).
#
# Go 1.26's fuzzing coordinator can fail a run that found nothing with a
# bare "context deadline exceeded": when -fuzztime ends while a worker
# starved of CPU is still inside a call (golang/go#75804, fixed in Go
# 1.27). A real finding always saves its input under the package's
# testdata/fuzz/TARGET/, so a failure of that kind that saved nothing is
# run again, for the same time, up to twice; any other failure, or one
# that saved an input, fails at once.
set -u
go=$1 pkg=$2 fn=$3 fuzztime=$4
corpus="$pkg/testdata/fuzz/$fn"
runs=0
while :; do
	runs=$((runs + 1))
	before=$(ls "$corpus" 2>/dev/null)
	out=$("$go" test -run '^$' -fuzz "^$fn\$" -fuzztime "$fuzztime" -parallel 1 "$pkg" 2>&1)
	rc=$?
	after=$(ls "$corpus" 2>/dev/null)
	if [ "$rc" -ne 0 ] && [ "$before" = "$after" ] && [ "$runs" -le 2 ] &&
		printf '%s\n' "$out" | grep -q '^    context deadline exceeded$' &&
		! printf '%s\n' "$out" | grep -q 'Failing input written'; then
		printf 'fuzz %s (%s, %s): the coordinator stopped with "context deadline exceeded" and saved no input (golang/go#75804); running it again\n' \
			"$fn" "$pkg" "$fuzztime"
		continue
	fi
	break
done
if [ "$rc" -ne 0 ]; then
	printf '%s\n' "$out"
fi
printf '%s\n' "$out" | tail -n 2 | sed "s|^|fuzz $fn ($pkg, $fuzztime): |"
exit "$rc"
