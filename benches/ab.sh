#!/usr/bin/env bash
# Two Hearth builds against each other on bench-backup's data set, for a
# bisect or a before/after: first backups and full restores, interleaved
# (the build that goes first alternates), a sync and a pause before each.
#
#   benches/ab.sh OLD_HEARTH NEW_HEARTH      (or: just bench-ab OLD NEW)
#
# Prints each round's seconds and peak RSS, and the medians' ratio new/old.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/quiet.sh
[ $# -eq 2 ] || { echo "usage: benches/ab.sh OLD_HEARTH NEW_HEARTH" >&2; exit 2; }
bins=("$(realpath "$1")" "$(realpath "$2")")
work=${BENCH_DIR:-/var/tmp/hearth-bench}/ab
data=${BENCH_DIR:-/var/tmp/hearth-bench}/data
rounds=${BENCH_ROUNDS:-3}
benches/dataset.sh "$data"
bytes=$(du -sb --exclude=.complete "$data" | cut -f1)
find "$data" -type f -exec cat {} + > /dev/null
mkdir -p "$work"
echo "bench-passphrase-long" > "$work/pp"
printf '' > "$work/hearth.toml"
H() { local b=$1; shift; "${bins[$b]}" --config "$work/hearth.toml" backup --data "$work/h$b" "$@"; }
settle() { sync; sleep "${BENCH_SETTLE:-10}"; }
timed() {  # NAME CMD...
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/$name" "$@" >/dev/null 2>"$work/$name.err" \
    || { echo "ab: $name failed:" >&2; cat "$work/$name.err" >&2; exit 1; }
}
wait_for_quiet
for r in $(seq "$rounds"); do
  for b in $(( r % 2 )) $(( (r + 1) % 2 )); do
    rm -rf "$work/h$b" && mkdir -p "$work/h$b"
    H "$b" init --passphrase-file "$work/pp" >/dev/null
    settle
    timed "backup-$b-$r" "${bins[$b]}" --config "$work/hearth.toml" backup --data "$work/h$b" run "$data"
  done
done
for r in $(seq "$rounds"); do
  for b in $(( r % 2 )) $(( (r + 1) % 2 )); do
    snap=$(H "$b" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
    settle
    timed "restore-$b-$r" "${bins[$b]}" --config "$work/hearth.toml" backup --data "$work/h$b" restore "$snap" --target "$work/out-$b-$r"
  done
done
diff -r "$data" "$work/out-1-$rounds" >/dev/null && echo "ab: the new build's restore is identical" >&2
# Deleted only now: see the restore note in benches/backup.sh (ext4 without
# a journal scans past inodes freed in the last 60 s, or 6 minutes while
# their inode-table block is being written, as a restore's allocations do).
rm -rf "$work"/out-*
deleted_many
median() { for r in $(seq "$rounds"); do cut -d' ' -f1 "$work/$1-$r"; done | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
rounds_of() { for r in $(seq "$rounds"); do cut -d' ' -f1 "$work/$1-$r"; done | paste -sd' '; }
rss() { for r in $(seq "$rounds"); do cut -d' ' -f2 "$work/$1-$r"; done | sort -g | tail -1; }
printf '\n%s MiB, %s (%s cores), %s interleaved rounds\nold: %s\nnew: %s\n\n' \
  "$((bytes / 1048576))" "$(uname -m)" "$(nproc)" "$rounds" "${bins[0]}" "${bins[1]}"
printf '| %-14s | %-22s | %-22s | %9s |\n' measure "old s (rounds)" "new s (rounds)" "old/new"
for phase in backup restore; do
  o=$(median "$phase-0"); n=$(median "$phase-1")
  printf '| %-14s | %-22s | %-22s | %8.2fx |\n' "$phase" "$o ($(rounds_of "$phase-0"))" "$n ($(rounds_of "$phase-1"))" \
    "$(awk -v o="$o" -v n="$n" 'BEGIN { print o / n }')"
  printf '| %-14s | %-22s | %-22s | %9s |\n' "$phase MiB/s" \
    "$(awk -v b="$bytes" -v s="$o" 'BEGIN { printf "%.0f", b / 1048576 / s }')" \
    "$(awk -v b="$bytes" -v s="$n" 'BEGIN { printf "%.0f", b / 1048576 / s }')" ""
  printf '| %-14s | %-22s | %-22s | %9s |\n' "$phase RSS MiB" "$(( $(rss "$phase-0") / 1024 ))" "$(( $(rss "$phase-1") / 1024 ))" ""
done
