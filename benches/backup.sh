#!/usr/bin/env bash
# Backup benchmark: Hearth against restic and borg (Debian's packages) on the
# same ~1 GiB data set, in the same run, on the same warm page cache.
#
#   benches/backup.sh            (or: just bench-backup)
#
# Data set (generated once, deterministic): 500 MiB incompressible in five
# files, 300 MiB of compressible text in thirty, and 50,000 small files of
# 1-8 KiB in 500 folders. Each tool gets BENCH_ROUNDS (3) first backups into
# fresh repositories, interleaved; a rerun with no change and a rerun after
# ~1% of the data changed; and BENCH_ROUNDS full restores, interleaved.
# Prints medians, spreads and the ratios Hearth/restic of the medians.
# When `restic-trixie` (Debian 13's restic 0.18) and `rustic` (rustic-rs,
# built by scripts/bootstrap bench) are installed, they run in every round
# too, as the stronger peers. Each round
# also times the physical limit (benches/limit.rs: read, BLAKE3, zstd,
# ChaCha20-Poly1305 on all cores, nothing else) and Hearth's first backups
# record where their time goes (`run --stage-times`).
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/quiet.sh
work=${BENCH_DIR:-/var/tmp/hearth-bench}
data=$work/data
target=${CARGO_TARGET_DIR:-target}
hearth=$target/release/hearth

for tool in restic borg /usr/bin/time python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool missing; run scripts/bootstrap bench" >&2; exit 1; }
done
cargo build --release --locked -p hearth >&2
cargo bench --locked -p hearth --bench limit --no-run >&2
limit_bin=$(find "$target"/release/deps -maxdepth 1 -type f -executable -name 'limit-*' -printf '%T@ %p\n' | sort -n | tail -1 | cut -d' ' -f2)
tools=(hearth restic borg)
# Stronger peers, each in every round when installed (scripts/bootstrap bench).
extras=()
if command -v restic-trixie >/dev/null; then extras+=(restic18); fi
if command -v rustic >/dev/null; then extras+=(rustic); fi
tools+=("${extras[@]}")
has() { [[ " ${extras[*]} " == *" $1 "* ]]; }
label() { case $1 in restic18) echo "restic $(restic-trixie version | awk '{ print $2 }')" ;; rustic) rustic --version | awk '{ print "rustic", $2 }' ;; esac; }

benches/dataset.sh "$data"
bytes=$(du -sb --exclude=.complete "$data" | cut -f1)
mib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }
echo "bench: data set $(mib "$bytes") MiB, $(find "$data" -type f | wc -l) files" >&2

# Warm the page cache so no tool pays for cold reads the others do not.
find "$data" -type f -exec cat {} + > /dev/null

export RESTIC_PASSWORD=bench-passphrase BORG_PASSPHRASE=bench-passphrase RUSTIC_PASSWORD=bench-passphrase
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
# Rounds of first backups and of restores, interleaved (the tool that goes
# first rotates) so noise on this machine hits every tool alike; the table
# gives the median and the spread, and ratios of medians.
rounds=${BENCH_ROUNDS:-3}
echo "bench-passphrase-long" > "$work/pp"
printf '' > "$work/hearth.toml"
H() { "$hearth" --config "$work/hearth.toml" backup --data "$work/hearth" "$@"; }
fresh_repos() {
  rm -rf "$work/hearth" "$work/restic" "$work/restic18" "$work/rustic" "$work/borg" "$work/restore"
  sync
  mkdir -p "$work/hearth" "$work/restore"
  H init --passphrase-file "$work/pp" >/dev/null
  restic init --repo "$work/restic" >/dev/null
  borg init -e repokey-blake2 "$work/borg" >/dev/null
  if has restic18; then restic-trixie init --repo "$work/restic18" >/dev/null; fi
  if has rustic; then rustic -r "$work/rustic" init >/dev/null 2>&1; fi
}

# timed NAME CMD...: runs CMD, records "seconds maxrss_kib" in $work/NAME.
timed() {
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/$name" "$@" >/dev/null 2>"$work/$name.err" \
    || { echo "bench: $name failed:" >&2; cat "$work/$name.err" >&2; exit 1; }
}
secs() { cut -d' ' -f1 "$work/$1"; }
rss() { cut -d' ' -f2 "$work/$1"; }
# order R: the tools, starting with a different one each round.
order() { local i=$(( ($1 - 1) % ${#tools[@]} )); echo "${tools[*]:i}" "${tools[*]:0:i}"; }

# Every timed run starts on a settled disk: sync, then a pause. Hearth
# fsyncs each pack, so without this it waits for the writeback of the
# previous tool's repository (restic 0.14 does not fsync): measured, a Hearth
# first backup took 9.8 s when it went first and 14.0-14.9 s after restic and
# borg had run.
settle() { sync; sleep "${BENCH_SETTLE:-10}"; }
n=0
backup() {  # TOOL NAME
  settle
  n=$((n + 1))
  case $1 in
    hearth) timed "$2" "$hearth" --config "$work/hearth.toml" backup --data "$work/hearth" run --stage-times "$data" ;;
    restic) timed "$2" restic --repo "$work/restic" backup --quiet "$data" ;;
    restic18) timed "$2" restic-trixie --repo "$work/restic18" backup --quiet "$data" ;;
    rustic) timed "$2" rustic -r "$work/rustic" backup "$data" ;;
    borg) borg_last=run$n; timed "$2" borg create "$work/borg::run$n" "$data" ;;
  esac
}
# The limit, once a round, on the same settled machine and warm cache.
limit() { settle; "$limit_bin" "$data" | awk '/^limit MiB\/s/ { print $3 }' > "$work/limit-$1"; }
# What a killed run left, then what is left of the quiet time (quiet.sh).
if [ -d "$work/restore" ]; then rm -rf "$work/restore"; deleted_many; fi
wait_for_quiet
for r in $(seq "$rounds"); do
  echo "bench: round $r of $rounds: first backups ($(order "$r"))" >&2
  fresh_repos
  for t in $(order "$r"); do backup "$t" "$t-first-$r"; done
  limit "$r"
done
# The reruns, once, on the last round's repositories.
echo "bench: unchanged reruns" >&2
for t in "${tools[@]}"; do backup "$t" "$t-same"; done
# ~1% change: 5 MiB rewritten inside a large file, 100 small files rewritten.
python3 - "$data" <<'PY'
import os, random, sys
root = sys.argv[1]; rnd = random.Random(7)
with open(f"{root}/large/blob2.bin", "r+b") as f:
    f.seek(37 << 20); f.write(rnd.randbytes(5 << 20))
for d in range(0, 500, 5):
    with open(f"{root}/small/d{d:03}/f050.dat", "wb") as f:
        f.write(rnd.randbytes(4096))
PY
echo "bench: reruns after a 1% change" >&2
for t in "${tools[@]}"; do backup "$t" "$t-changed"; done

# A second run within ~6 minutes of the last pays for this one's deletes.
snap=$(H list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
# Each restore goes into a folder of its own, and none is deleted until the
# last has run: ext4 without a journal (this machine's root) will not reuse
# an inode freed less than 60 s earlier (6 minutes while its inode-table
# block is dirty, as it is during a restore's allocations) and scans past
# every such one, so
# deleting the previous 50,000-file restore right before the next made
# whichever tool came next pay for it (measured: a Hearth restore took
# 12.4 s that way, 9.7 s into a folder with no recent deletes).
restore() {  # TOOL NAME
  local into=$work/restore/$2
  settle
  case $1 in
    hearth) timed "$2" "$hearth" --config "$work/hearth.toml" backup --data "$work/hearth" restore "$snap" --target "$into" ;;
    restic) timed "$2" restic --repo "$work/restic" restore latest --target "$into" ;;
    restic18) timed "$2" restic-trixie --repo "$work/restic18" restore latest --target "$into" ;;
    rustic) timed "$2" rustic -r "$work/rustic" restore latest "$into" ;;
    borg) mkdir -p "$into"; (cd "$into" && timed "$2" borg extract "$work/borg::$borg_last") ;;
  esac
  # Hearth's restore ends with syncfs; the peers' end with the files still
  # in the page cache (strace: no syncfs or sync, restic's two fsyncs are
  # not the files'). The sync right after says what they left to write.
  timed "$2.sync" sync
}
for r in $(seq "$rounds"); do
  echo "bench: round $r of $rounds: restores ($(order "$r"))" >&2
  for t in $(order "$r"); do restore "$t" "$t-restore-$r"; done
done
diff -r "$data" "$work/restore/hearth-restore-$rounds" >/dev/null && echo "bench: hearth restore identical" >&2
rm -rf "$work/restore"
deleted_many

# median/spread over the rounds of TOOL-PHASE, in seconds.
median() { for r in $(seq "$rounds"); do secs "$1-$r"; done | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
spread() { for r in $(seq "$rounds"); do secs "$1-$r"; done | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s-%s", lo, hi }'; }
repo() { du -sb "$work/$1" | cut -f1; }
hearth_repo=$(( $(repo hearth/repo) + $(du -sb "$work/hearth/hearth.db" | cut -f1) ))
mbs() { awk -v b="$bytes" -v s="$1" 'BEGIN { printf "%.0f", b / 1048576 / s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

printf '\nBackup benchmark, %s MiB in %s files, %s (%s cores), %s interleaved rounds\n\n' "$(mib "$bytes")" \
  "$(find "$data" -type f | wc -l)" "$(uname -m)" "$(nproc)" "$rounds"
printf '| %-28s | %10s | %10s | %10s | %14s |\n' measure hearth restic borg "hearth/restic"
printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..30})" "$(printf -- '-%.0s' {1..12})" "$(printf -- '-%.0s' {1..12})" "$(printf -- '-%.0s' {1..12})" "$(printf -- '-%.0s' {1..16})"
row() { printf '| %-28s | %10s | %10s | %10s | %14s |\n' "$@"; }
row "first backup, MiB/s (median)" "$(mbs "$(median hearth-first)")" "$(mbs "$(median restic-first)")" "$(mbs "$(median borg-first)")" \
  "$(ratio "$(median restic-first)" "$(median hearth-first)")x"
row "  first backup, s (spread)" "$(spread hearth-first)" "$(spread restic-first)" "$(spread borg-first)" ""
row "rerun, no change, s" "$(secs hearth-same)" "$(secs restic-same)" "$(secs borg-same)" \
  "$(ratio "$(secs hearth-same)" "$(secs restic-same)")"
row "rerun, 1% changed, s" "$(secs hearth-changed)" "$(secs restic-changed)" "$(secs borg-changed)" \
  "$(ratio "$(secs hearth-changed)" "$(secs restic-changed)")"
row "full restore, MiB/s (median)" "$(mbs "$(median hearth-restore)")" "$(mbs "$(median restic-restore)")" "$(mbs "$(median borg-restore)")" \
  "$(ratio "$(median restic-restore)" "$(median hearth-restore)")x"
row "  full restore, s (spread)" "$(spread hearth-restore)" "$(spread restic-restore)" "$(spread borg-restore)" ""
# The same restores with the sync after them: the files on disk, for every tool.
synced() { for r in $(seq "$rounds"); do awk '{ s += $1 } END { printf "%.2f\n", s }' "$work/$1-$r" "$work/$1-$r.sync"; done | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
row "  restore + sync, MiB/s" "$(mbs "$(synced hearth-restore)")" "$(mbs "$(synced restic-restore)")" "$(mbs "$(synced borg-restore)")" \
  "$(ratio "$(synced restic-restore)" "$(synced hearth-restore)")x"
peak() { local m=0 f r b; for f in "$work/$1"-*; do b=${f##*/}; [[ $b == *.* ]] && continue; r=$(rss "${f##*/}"); [ "$r" -gt "$m" ] && m=$r; done; echo $((m / 1024)); }
row "peak RSS, MiB" "$(peak hearth)" "$(peak restic)" "$(peak borg)" "$(ratio "$(peak hearth)" "$(peak restic)")"
row "repository, MiB" "$(mib "$hearth_repo")" "$(mib "$(repo restic)")" "$(mib "$(repo borg)")" \
  "$(ratio "$hearth_repo" "$(repo restic)")"
for x in "${extras[@]}"; do
  echo
  printf '| %-28s | %10s | %14s |\n' "stronger peer" "$(label "$x")" "hearth/$(label "$x" | tr -d ' ')"
  printf '|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..30})" "$(printf -- '-%.0s' {1..12})" "$(printf -- '-%.0s' {1..16})"
  r2() { printf '| %-28s | %10s | %14s |\n' "$@"; }
  r2 "first backup, MiB/s (median)" "$(mbs "$(median "$x-first")")" "$(ratio "$(median "$x-first")" "$(median hearth-first)")x"
  r2 "  first backup, s (spread)" "$(spread "$x-first")" ""
  r2 "rerun, no change, s" "$(secs "$x-same")" "$(ratio "$(secs hearth-same)" "$(secs "$x-same")")"
  r2 "rerun, 1% changed, s" "$(secs "$x-changed")" "$(ratio "$(secs hearth-changed)" "$(secs "$x-changed")")"
  r2 "full restore, MiB/s (median)" "$(mbs "$(median "$x-restore")")" "$(ratio "$(median "$x-restore")" "$(median hearth-restore)")x"
  r2 "  full restore, s (spread)" "$(spread "$x-restore")" ""
  r2 "  restore + sync, MiB/s" "$(mbs "$(synced "$x-restore")")" "$(ratio "$(synced "$x-restore")" "$(synced hearth-restore)")x"
  r2 "peak RSS, MiB" "$(peak "$x")" "$(ratio "$(peak hearth)" "$(peak "$x")")"
  r2 "repository, MiB" "$(mib "$(repo "$x")")" "$(ratio "$hearth_repo" "$(repo "$x")")"
done

# The limit: its median over the rounds, and Hearth's first backup against it.
limit_med=$(cat "$work"/limit-[0-9]* | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
hearth_mbs=$(mbs "$(median hearth-first)")
echo
echo "Physical limit (read + BLAKE3 + zstd at Hearth's level + ChaCha20-Poly1305 on $(nproc) cores, page cache, no writes):"
echo "  $limit_med MiB/s median (rounds: $(cat "$work"/limit-[0-9]* | tr '\n' ' ')); Hearth's first backup $hearth_mbs MiB/s = $(ratio "$hearth_mbs" "$limit_med") of it"
# Where Hearth's time went, in the round whose first backup is the median.
med=$(median hearth-first)
for r in $(seq "$rounds"); do
  if [ "$(secs "hearth-first-$r")" = "$med" ]; then
    echo
    echo "Hearth's first backup, round $r ($med s wall):"
    grep -A12 '^stage times' "$work/hearth-first-$r.err" || true
  fi
done
echo
echo "Throughput ratios: >1x means Hearth is faster. Time and size ratios: <1 means Hearth is smaller."
echo "restic 0.14 and borg 1.2 at their defaults (restic: repository v2, auto compression; borg: lz4, repokey-blake2)."
