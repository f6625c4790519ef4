#!/usr/bin/env bash
# Backup benchmark: Hearth against restic and borg (Debian's packages) on the
# same ~1 GiB data set, in the same run, on the same warm page cache.
#
#   benches/backup.sh            (or: just bench-backup)
#
# Data set (generated once, deterministic): 500 MiB incompressible in five
# files, 300 MiB of compressible text in thirty, and 50,000 small files of
# 1-8 KiB in 500 folders. Each tool gets: a first backup, a rerun with no
# change, a rerun after ~1% of the data changed, and a full restore.
# Prints a table and the ratios Hearth/restic.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${BENCH_DIR:-/var/tmp/hearth-bench}
data=$work/data
target=${CARGO_TARGET_DIR:-target}
hearth=$target/release/hearth

for tool in restic borg /usr/bin/time python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool missing; run scripts/bootstrap bench" >&2; exit 1; }
done
cargo build --release --locked -p hearth >&2

if [ ! -f "$data/.complete" ]; then
  echo "bench: generating the data set in $data" >&2
  rm -rf "$data"; mkdir -p "$data"
  python3 - "$data" <<'PY'
import os, random, sys
root = sys.argv[1]
rnd = random.Random(20261121)
os.makedirs(f"{root}/large")
for i in range(5):
    with open(f"{root}/large/blob{i}.bin", "wb") as f:
        for _ in range(100):
            f.write(rnd.randbytes(1 << 20))
words = [bytes(rnd.choices(b"abcdefghijklmnopqrstuvwxyz", k=rnd.randint(2, 10))) for _ in range(5000)]
os.makedirs(f"{root}/text")
for i in range(30):
    with open(f"{root}/text/doc{i}.txt", "wb") as f:
        size = 0
        while size < 10 << 20:
            line = b" ".join(rnd.choices(words, k=12)) + b"\n"
            f.write(line); size += len(line)
for d in range(500):
    os.makedirs(f"{root}/small/d{d:03}")
    for i in range(100):
        with open(f"{root}/small/d{d:03}/f{i:03}.dat", "wb") as f:
            n = rnd.randint(1024, 8192)
            f.write(rnd.randbytes(n // 2) + bytes(n - n // 2))
PY
  touch "$data/.complete"
fi
bytes=$(du -sb --exclude=.complete "$data" | cut -f1)
mib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }
echo "bench: data set $(mib "$bytes") MiB, $(find "$data" -type f | wc -l) files" >&2

# Warm the page cache so no tool pays for cold reads the others do not.
find "$data" -type f -exec cat {} + > /dev/null

export RESTIC_PASSWORD=bench-passphrase BORG_PASSPHRASE=bench-passphrase
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
rm -rf "$work/hearth" "$work/restic" "$work/borg" "$work/restore"
sync
mkdir -p "$work/hearth" "$work/restore"
echo "bench-passphrase-long" > "$work/pp"
printf '' > "$work/hearth.toml"
H() { "$hearth" --config "$work/hearth.toml" backup --data "$work/hearth" "$@"; }
H init --passphrase-file "$work/pp" >/dev/null
restic init --repo "$work/restic" >/dev/null
borg init -e repokey-blake2 "$work/borg" >/dev/null

# timed NAME CMD...: runs CMD, records "seconds maxrss_kib" in $work/NAME.
timed() {
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/$name" "$@" >/dev/null 2>"$work/$name.err" \
    || { echo "bench: $name failed:" >&2; cat "$work/$name.err" >&2; exit 1; }
}
secs() { cut -d' ' -f1 "$work/$1"; }
rss() { cut -d' ' -f2 "$work/$1"; }

n=0
run_all() {  # phase
  n=$((n + 1))
  timed "hearth-$1" "$hearth" --config "$work/hearth.toml" backup --data "$work/hearth" run "$data"
  timed "restic-$1" restic --repo "$work/restic" backup --quiet "$data"
  timed "borg-$1" borg create "$work/borg::run$n" "$data"
}
echo "bench: first backups" >&2;   run_all first
echo "bench: unchanged reruns" >&2; run_all same
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
echo "bench: reruns after a 1% change" >&2; run_all changed

echo "bench: restores" >&2
# File creation on a VM disk swings with writeback of earlier deletions, so
# every tool restores onto a settled disk: sync, then a pause.
settle() { sync; sleep "${BENCH_SETTLE:-10}"; }
settle
snap=$(H list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
timed hearth-restore "$hearth" --config "$work/hearth.toml" backup --data "$work/hearth" restore "$snap" --target "$work/restore/hearth"
settle
timed restic-restore restic --repo "$work/restic" restore latest --target "$work/restore/restic"
settle
mkdir -p "$work/restore/borg"
(cd "$work/restore/borg" && timed borg-restore borg extract "$work/borg::run3")
diff -r "$data" "$work/restore/hearth" >/dev/null && echo "bench: hearth restore identical" >&2

repo() { du -sb "$work/$1" | cut -f1; }
hearth_repo=$(( $(repo hearth/repo) + $(du -sb "$work/hearth/hearth.db" | cut -f1) ))
mbs() { awk -v b="$bytes" -v s="$1" 'BEGIN { printf "%.0f", b / 1048576 / s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

printf '\nBackup benchmark, %s MiB in %s files, %s (%s cores)\n\n' "$(mib "$bytes")" \
  "$(find "$data" -type f | wc -l)" "$(uname -m)" "$(nproc)"
printf '| %-28s | %10s | %10s | %10s | %14s |\n' measure hearth restic borg "hearth/restic"
printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..30})" "$(printf -- '-%.0s' {1..12})" "$(printf -- '-%.0s' {1..12})" "$(printf -- '-%.0s' {1..12})" "$(printf -- '-%.0s' {1..16})"
row() { printf '| %-28s | %10s | %10s | %10s | %14s |\n' "$@"; }
row "first backup, MB/s" "$(mbs "$(secs hearth-first)")" "$(mbs "$(secs restic-first)")" "$(mbs "$(secs borg-first)")" \
  "$(ratio "$(secs restic-first)" "$(secs hearth-first)")x"
row "rerun, no change, s" "$(secs hearth-same)" "$(secs restic-same)" "$(secs borg-same)" \
  "$(ratio "$(secs hearth-same)" "$(secs restic-same)")"
row "rerun, 1% changed, s" "$(secs hearth-changed)" "$(secs restic-changed)" "$(secs borg-changed)" \
  "$(ratio "$(secs hearth-changed)" "$(secs restic-changed)")"
row "full restore, MB/s" "$(mbs "$(secs hearth-restore)")" "$(mbs "$(secs restic-restore)")" "$(mbs "$(secs borg-restore)")" \
  "$(ratio "$(secs restic-restore)" "$(secs hearth-restore)")x"
peak() { local m=0; for p in first same changed restore; do r=$(rss "$1-$p"); [ "$r" -gt "$m" ] && m=$r; done; echo $((m / 1024)); }
row "peak RSS, MiB" "$(peak hearth)" "$(peak restic)" "$(peak borg)" "$(ratio "$(peak hearth)" "$(peak restic)")"
row "repository, MiB" "$(mib "$hearth_repo")" "$(mib "$(repo restic)")" "$(mib "$(repo borg)")" \
  "$(ratio "$hearth_repo" "$(repo restic)")"
echo
echo "Throughput ratios: >1x means Hearth is faster. Time and size ratios: <1 means Hearth is smaller."
echo "restic 0.14 and borg 1.2 at their defaults (restic: repository v2, auto compression; borg: lz4, repokey-blake2)."
