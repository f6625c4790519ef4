# Hearth's developer menu. `just` alone lists it.

# List the recipes.
default:
    @just --list --unsorted

# Run Hearth on its embedded defaults: ./hearth-data, http://127.0.0.1:8080/.
run:
    cargo run -p hearth -- serve

# Install anything missing, then run every check CI runs (the README's test command).
test-all:
    scripts/test

# One build serves clippy and the tests (clippy-driver as the workspace's
# rustc); the aarch64 release build runs while the test binaries run (they
# mostly wait on sockets and timers); then its smoke check and the image lint.

# Everything CI checks, assuming the tools are installed (the README's test command runs this).
check: tools
    cargo fmt --all -- --check
    scripts/run-tests --lint --beside "just build-arm64"
    just arm64-smoke lint-image

# Name any tool from scripts/tools that is missing, with its package (seconds).
tools:
    scripts/check-tools test arm64

# Formatting and lints exactly as CI enforces them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --locked -- -D warnings

# Unit and integration tests, the headless Chromium test included.
test:
    scripts/run-tests

# scripts/test in a clean Debian 12 root (mmdebstrap), as a new user meets it; prints its wall time (root).
fresh-check:
    scripts/fresh-check

# Install the host tools for development and tests (every line of scripts/tools in groups test and arm64).
deps:
    scripts/bootstrap all

# Stripped release hearth for the Pi 4 (installs the target and linker if missing).
build-arm64:
    scripts/bootstrap arm64
    cargo build --release --locked -p hearth --target aarch64-unknown-linux-gnu
    @echo "built ${CARGO_TARGET_DIR:-target}/aarch64-unknown-linux-gnu/release/hearth"

# Run the aarch64 build under qemu-aarch64-static: --version and config.
arm64-smoke: build-arm64
    scripts/arm64-smoke

# Stripped release hearth for this machine.
build:
    cargo build --release --locked -p hearth

# Measure binary sizes, start-to-ready time and idle memory for the notes.
measure: build build-arm64
    scripts/measure

# Backup benchmark: Hearth vs restic and borg on ~1 GiB, one table of ratios.
bench-backup:
    scripts/bootstrap bench
    benches/backup.sh

# Two Hearth builds against each other on bench-backup's set (a bisect, a before/after).
bench-ab OLD NEW:
    benches/ab.sh {{OLD}} {{NEW}}

# S3 benchmark: Hearth vs restic's S3 backend into one three-node Garage cluster (~1 GiB).
bench-s3:
    scripts/bootstrap all
    scripts/bootstrap bench
    benches/s3.sh

# Board benchmark: 1000 live SSE clients at 20 posts/s, and the board page vs axum hello world.
bench-board:
    cargo bench -p hearth --bench board

# Mirror benchmark: two paired Hearths vs a plain rustls copy of the same packs.
bench-mirror:
    cargo bench -p hearth --bench mirror

# Show that the aarch64 build uses chacha20's NEON backend (unstripped build, symbol check).
check-neon:
    scripts/check-neon

# Score the systemd unit's hardening (lower is better; CI requires <= 1.9).
security:
    systemd-analyze security --offline=true --no-pager systemd/hearth.service

# Copy the development database to FILE with VACUUM INTO.
db-backup FILE:
    cargo run -p hearth -- db backup {{FILE}}

# Fuzz the backup parsers SECS seconds per target (cargo-fuzz, installed if missing; RUSTC_BOOTSTRAP=1).
fuzz SECS="60":
    fuzz/run {{SECS}}

# Signed update for the Pi 4: image/out/hearth-<version>-arm64.update (KEY: minisign secret key, kept outside the repository).
release KEY NOTES="": build-arm64
    scripts/release {{KEY}} {{NOTES}}

# A throwaway minisign key pair for test updates: DIR/hearth-dev.key (no password) and DIR/hearth-dev.pub.
dev-key DIR:
    mkdir -p {{DIR}}
    minisign -G -W -p {{DIR}}/hearth-dev.pub -s {{DIR}}/hearth-dev.key
    @echo "trust it on a test device: update_extra_key = \"$(tail -1 {{DIR}}/hearth-dev.pub)\""

# Flashable Pi 4 image: image/out/hearth-<version>-arm64.img.xz and .sha256 (root; HEARTH_BIN=path reuses a binary).
image:
    image/build

# Boot the built image twice under qemu-system-aarch64 -M virt and check it (slow: software emulation).
image-test *IMAGE:
    image/test {{IMAGE}}

# Quick static checks of image/ and systemd/ (shellcheck, systemd-analyze verify, configs); part of check.
lint-image:
    scripts/lint-image
