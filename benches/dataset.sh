#!/usr/bin/env bash
# The benchmarks' ~1 GiB mixed data set, generated once (deterministic) into
# DIR: 500 MiB incompressible in five files, 300 MiB of compressible text in
# thirty, and 50,000 small files of 1-8 KiB in 500 folders. benches/backup.sh
# and benches/s3.sh share it.
#
#   benches/dataset.sh DIR
set -euo pipefail
data=${1:?a folder}
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
