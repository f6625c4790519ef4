# shellcheck shell=bash
# Sourced by the benchmarks (backup.sh, s3.sh, ab.sh).
#
# ext4 without a journal (this VM's root) makes creating files slow for
# minutes after many were deleted, and Hearth's restore pays far more for it
# than restic's (docs/performance.md, "Why a restore can take three times as
# long here"). Each benchmark marks when it deleted many files (its
# restores), and waits before its first timed run until BENCH_QUIET seconds
# (default 360) have passed since the last mark, so a run started right
# after another does not pay for the other's clean-up.
quiet_stamp=${BENCH_STAMP:-/var/tmp/hearth-bench-deleted-at}
deleted_many() { date +%s > "$quiet_stamp"; }
wait_for_quiet() {
  [ -f "$quiet_stamp" ] || return 0
  local last left
  last=$(cat "$quiet_stamp")
  left=$(( last + ${BENCH_QUIET:-360} - $(date +%s) ))
  if [ "$left" -gt 0 ]; then
    echo "bench: many files were deleted at $(date -d "@$last" +%T); waiting $left s for ext4 (BENCH_QUIET=0 skips)" >&2
    sleep "$left"
  fi
}
