#!/usr/bin/env bash
# S3 benchmark: Hearth with an S3 target and restic with its own S3 backend,
# into the same three-node Garage cluster on 127.0.0.1 (replication factor
# 3, scripts/garage-cluster), with the same ~1 GiB set as bench-backup.
#
#   benches/s3.sh            (or: just bench-s3)
#
# Each of BENCH_ROUNDS (3) rounds starts a fresh cluster and runs, with the
# order of the two tools swapped every round:
#   - a first backup that ends with the data in the bucket: `hearth backup
#     run` with a target set (the local backup, then the upload), and
#     `restic backup` straight into S3;
#   - a full restore from the bucket alone: for Hearth, an empty data folder
#     with the S3 settings and the passphrase (`restore 1 --from s3`, which
#     reads the packs where they lie), for restic `restore latest`;
#   - for Hearth alone, the other way back: a disaster recovery into another
#     empty data folder (`repair-index --recover-key --from s3`: every pack
#     copied down), then `restore 1` from those packs; the two summed are
#     compared with restic too.
# The last round also times a rerun with no change. Prints medians, spreads,
# peak RSS and the ratios of the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/quiet.sh
work=${BENCH_DIR:-/var/tmp/hearth-bench-s3}
data=${BENCH_DATA:-/var/tmp/hearth-bench/data}
target=${CARGO_TARGET_DIR:-target}
hearth=$target/release/hearth

# The cluster runs bootstrap's release build of Garage (garage-release, the
# bench group): the tests' debug build set the pace for both tools.
export GARAGE=${GARAGE:-garage-release}
for tool in restic "$GARAGE" /usr/bin/time python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool missing; run scripts/bootstrap bench" >&2; exit 1; }
done
cargo build --release --locked -p hearth >&2
benches/dataset.sh "$data"
bytes=$(du -sb --exclude=.complete "$data" | cut -f1)
mib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }
echo "bench: data set $(mib "$bytes") MiB, $(find "$data" -type f | wc -l) files" >&2
find "$data" -type f -exec cat {} + > /dev/null

rounds=${BENCH_ROUNDS:-3}
if [ -d "$work/restores" ]; then deleted_many; fi
rm -rf "$work"; mkdir -p "$work"
cluster=$work/garage
trap 'scripts/garage-cluster stop "$cluster" >/dev/null 2>&1 || true' EXIT
echo "bench-passphrase-long" > "$work/pp"
printf '' > "$work/hearth.toml"
export RESTIC_PASSWORD=bench-passphrase

timed() {  # NAME CMD...: "seconds maxrss_kib" in $work/NAME
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/$name" "$@" >/dev/null 2>"$work/$name.err" \
    || { echo "bench: $name failed:" >&2; cat "$work/$name.err" >&2; exit 1; }
}
secs() { cut -d' ' -f1 "$work/$1"; }
rss() { cut -d' ' -f2 "$work/$1"; }
settle() { sync; sleep "${BENCH_SETTLE:-5}"; }
H() { local d=$1; shift; "$hearth" --config "$work/hearth.toml" backup --data "$d" "$@"; }

backup() {  # TOOL NAME
  settle
  case $1 in
    hearth) timed "$2" "$hearth" --config "$work/hearth.toml" backup --data "$work/h" run "$data" ;;
    restic) timed "$2" restic --repo "s3:$S3_ENDPOINT/hearth/restic" backup --quiet "$data" ;;
  esac
}
restore() {  # TOOL NAME
  # Into folders of their own, deleted only after the last restore: on ext4
  # without a journal (this VM's root) a restore right after deleting the
  # previous 50,000 files paid for it (benches/backup.sh says more).
  local out=$work/restores/$2 dr=$work/restores/$2.data
  settle
  case $1 in
    hearth)
      mkdir -p "$dr"
      H "$dr" target set --endpoint "$S3_ENDPOINT" --bucket hearth \
        --access-key "$AWS_ACCESS_KEY_ID" --secret-file "$work/secret" >/dev/null
      timed "$2" "$hearth" --config "$work/hearth.toml" backup --data "$dr" \
        restore 1 --target "$out" --from s3 --passphrase-file "$work/pp"
      diff -r "$data" "$out" >/dev/null || { echo "bench: hearth's restore differs" >&2; exit 1; }
      [ ! -e "$dr/repo/packs" ] || { echo "bench: hearth's restore copied packs down" >&2; exit 1; }
      # The disaster recovery, after the sync below: Hearth only, not in the ratio.
      recovery=$2 ;;
    restic) timed "$2" restic --repo "s3:$S3_ENDPOINT/hearth/restic" restore latest --target "$out" ;;
  esac
  # Hearth's restore ends with syncfs, restic's with the files in the page
  # cache: the sync right after says what restic left to write.
  timed "$2.sync" sync
  if [ "$1" = hearth ]; then
    local rd=$work/restores/$2.recovered
    mkdir -p "$rd"
    H "$rd" target set --endpoint "$S3_ENDPOINT" --bucket hearth \
      --access-key "$AWS_ACCESS_KEY_ID" --secret-file "$work/secret" >/dev/null
    settle
    timed "$recovery.dr" "$hearth" --config "$work/hearth.toml" backup --data "$rd" \
      repair-index --recover-key --from s3 --passphrase-file "$work/pp"
    timed "$recovery.rs" "$hearth" --config "$work/hearth.toml" backup --data "$rd" \
      restore 1 --target "$out.2"
    diff -r "$data" "$out.2" >/dev/null || { echo "bench: hearth's second restore differs" >&2; exit 1; }
    # The two steps summed, as the other way back (NAME.two).
    paste -d' ' "$work/$recovery.dr" "$work/$recovery.rs" \
      | awk '{ printf "%.2f %d\n", $1 + $3, ($2 > $4 ? $2 : $4) }' > "$work/$recovery.two"
  fi
}

wait_for_quiet
for r in $(seq "$rounds"); do
  order=(hearth restic); [ $((r % 2)) = 0 ] && order=(restic hearth)
  echo "bench: round $r of $rounds (${order[*]}): a fresh cluster" >&2
  scripts/garage-cluster stop "$cluster" >/dev/null 2>&1 || true
  rm -rf "$cluster" "$work/h"
  scripts/garage-cluster start "$cluster" >&2
  # shellcheck disable=SC1091 # written by garage-cluster
  . "$cluster/env"
  echo "$AWS_SECRET_ACCESS_KEY" > "$work/secret"
  mkdir -p "$work/h"
  H "$work/h" init --passphrase-file "$work/pp" >/dev/null
  H "$work/h" target set --endpoint "$S3_ENDPOINT" --bucket hearth \
    --access-key "$AWS_ACCESS_KEY_ID" --secret-file "$work/secret" >/dev/null
  restic --repo "s3:$S3_ENDPOINT/hearth/restic" init >/dev/null
  for t in "${order[@]}"; do backup "$t" "$t-first-$r"; done
  if [ "$r" = "$rounds" ]; then
    for t in "${order[@]}"; do backup "$t" "$t-same"; done
  fi
  for t in "${order[@]}"; do restore "$t" "$t-restore-$r"; done
  stored=$(du -sb "$cluster"/n1/data | cut -f1)
done
rm -rf "$work/restores"
deleted_many

median() { for r in $(seq "$rounds"); do secs "$1-$r"; done | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
spread() { for r in $(seq "$rounds"); do secs "$1-$r"; done | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s-%s", lo, hi }'; }
mbs() { awk -v b="$bytes" -v s="$1" 'BEGIN { printf "%.0f", b / 1048576 / s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
peak() { local m=0 f r b; for f in "$work/$1"-[0-9]*; do b=${f##*/}; [[ $b == *.* ]] && continue; r=$(rss "${f##*/}"); [ "$r" -gt "$m" ] && m=$r; done; echo $((m / 1024)); }

printf '\nS3 benchmark: %s MiB in %s files into a 3-node Garage cluster (rf 3, %s) on 127.0.0.1, %s (%s cores), %s interleaved rounds\n\n' \
  "$(mib "$bytes")" "$(find "$data" -type f | wc -l)" "$GARAGE" "$(uname -m)" "$(nproc)" "$rounds"
row() { printf '| %-38s | %12s | %12s | %14s |\n' "$@"; }
row measure hearth restic "hearth/restic"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..40})" "$(printf -- '-%.0s' {1..14})" "$(printf -- '-%.0s' {1..14})" "$(printf -- '-%.0s' {1..16})"
row "first backup into S3, MiB/s (median)" "$(mbs "$(median hearth-first)")" "$(mbs "$(median restic-first)")" \
  "$(ratio "$(median restic-first)" "$(median hearth-first)")x"
row "  first backup, s (spread)" "$(spread hearth-first)" "$(spread restic-first)" ""
row "rerun, no change, s" "$(secs hearth-same)" "$(secs restic-same)" "$(ratio "$(secs hearth-same)" "$(secs restic-same)")"
row "full restore from S3, MiB/s (median)" "$(mbs "$(median hearth-restore)")" "$(mbs "$(median restic-restore)")" \
  "$(ratio "$(median restic-restore)" "$(median hearth-restore)")x"
row "  full restore, s (spread)" "$(spread hearth-restore)" "$(spread restic-restore)" ""
synced() { for r in $(seq "$rounds"); do awk '{ s += $1 } END { printf "%.2f\n", s }' "$work/$1-$r" "$work/$1-$r.sync"; done | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
row "  restore + sync, MiB/s (median)" "$(mbs "$(synced hearth-restore)")" "$(mbs "$(synced restic-restore)")" \
  "$(ratio "$(synced restic-restore)" "$(synced hearth-restore)")x"
steps() { for r in $(seq "$rounds"); do cut -d' ' -f1 "$work/hearth-restore-$r.$1"; done | sort -g | tr '\n' ' '; }
two() { for r in $(seq "$rounds"); do cut -d' ' -f1 "$work/hearth-restore-$r.two"; done | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
row "recovery, then restore here, MiB/s" "$(mbs "$(two)")" "$(mbs "$(median restic-restore)")" \
  "$(ratio "$(median restic-restore)" "$(two)")x"
row "  hearth: disaster recovery, s" "$(steps dr)" "" ""
row "  hearth: restore from its packs, s" "$(steps rs)" "" ""
row "peak RSS, backups, MiB" "$(peak hearth-first)" "$(peak restic-first)" "$(ratio "$(peak hearth-first)" "$(peak restic-first)")"
row "peak RSS, restores, MiB" "$(peak hearth-restore)" "$(peak restic-restore)" "$(ratio "$(peak hearth-restore)" "$(peak restic-restore)")"
steprss() { for r in $(seq "$rounds"); do echo $(( $(cut -d' ' -f2 "$work/hearth-restore-$r.$1") / 1024 )); done | sort -g | tr '\n' ' '; }
row "  hearth: disaster recovery, MiB" "$(steprss dr)" "" ""
echo
echo "One node's data folder held $(mib "$stored") MiB after the last round (both tools' copies)."
echo "Hearth's restore reads the bucket where it lies: key.age unsealed with the passphrase, the index"
echo "rebuilt from the packs' tables, then the files from ranged reads. The disaster recovery (every"
echo "pack copied down, the device made the repository again) is timed apart. Hearth's restore RSS is"
echo "age's scrypt for the passphrase, whose work factor age calibrated (to about a second) on the"
echo "machine that sealed key.age."
