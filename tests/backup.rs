//! The backup engine through the real binary: round trips, recovery with
//! Debian's age/zstd/sqlite3 only, corruption, and bad input.

use std::{
    fs,
    os::unix::fs::MetadataExt,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, SystemTime},
};

use crate::lab::*;
use crate::util::eventually;

#[test]
fn round_trip_is_identical_for_awkward_trees() {
    let lab = Lab::new();
    let src = lab.path("src");
    awkward_tree(&src);
    let out = lab.ok(&["run", src.to_str().unwrap()]);
    assert!(out.starts_with("snapshot 1 of "), "{out}");
    let target = lab.path("restored");
    lab.ok(&["restore", "1", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &target);
    // Sparse stays sparse: far fewer blocks than bytes.
    let sparse = fs::metadata(target.join("sparse")).unwrap();
    assert!(
        sparse.blocks() * 512 < 1 << 20,
        "{} blocks",
        sparse.blocks()
    );

    // One folder, or one file, alone.
    let part = lab.path("part");
    lab.ok(&[
        "restore",
        "1",
        "--target",
        part.to_str().unwrap(),
        "--path",
        "sub/inner",
    ]);
    assert_eq!(
        fs::read(part.join("inner/hard_b")).unwrap(),
        b"one inode, two names"
    );
    let ls = lab.ok(&["ls", "1", "sub"]);
    assert!(ls.contains("inner"), "{ls}");
}

#[test]
fn unchanged_rerun_stores_almost_nothing_and_changes_are_small() {
    let lab = Lab::new();
    let src = lab.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("big.bin"), noise(30 << 20, 3)).unwrap();
    for i in 0..50 {
        fs::write(
            src.join(format!("note{i}.txt")),
            format!("note {i}\n").repeat(100),
        )
        .unwrap();
    }
    lab.ok(&["run", src.to_str().unwrap()]);
    lab.ok(&["run", src.to_str().unwrap()]);
    let added = added_per_snapshot(&lab);
    assert!(added[0] > 30 << 20, "first run stores the data: {added:?}");
    assert!(
        added[1] < 4096,
        "an unchanged rerun stores only its snapshot record: {added:?}"
    );
    // Change a few bytes in the middle of the big file: only nearby chunks change.
    let mut data = fs::read(src.join("big.bin")).unwrap();
    data[15 << 20] ^= 0xff;
    fs::write(src.join("big.bin"), &data).unwrap();
    lab.ok(&["run", src.to_str().unwrap()]);
    let third: i64 = lab
        .sql("SELECT added FROM backup_snapshots WHERE id = 3")
        .parse()
        .unwrap();
    assert!(
        third < 10 << 20,
        "a one-byte change re-stores chunks, not the file: {third}"
    );
    // `latest` is the third run's snapshot, the only one with the change.
    let target = lab.path("out");
    lab.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert!(fs::read(target.join("big.bin")).unwrap() == data);
}

/// A folder of 1,500 one-chunk files, backed up again from a copy (a new
/// source, so every file is read and every chunk asked about): the walker
/// has loaded the index's ids into its filter by then, and still finds
/// every chunk, storing only the new trees.
#[test]
fn a_copy_of_many_small_files_is_found_in_the_index() {
    let lab = Lab::new();
    let (src, copy) = (lab.path("src"), lab.path("copy"));
    fs::create_dir(&src).unwrap();
    fs::create_dir(&copy).unwrap();
    for i in 0..1500 {
        let data = noise(2048, 1000 + i);
        fs::write(src.join(format!("f{i}")), &data).unwrap();
        fs::write(copy.join(format!("f{i}")), &data).unwrap();
    }
    lab.ok(&["run", src.to_str().unwrap()]);
    lab.ok(&["run", copy.to_str().unwrap()]);
    let added = added_per_snapshot(&lab);
    assert!(
        added[0] > 3_000_000,
        "the first run stores the files: {added:?}"
    );
    assert!(
        added[1] < 256 << 10,
        "the copy stores its trees, not its files again: {added:?}"
    );
}

/// Opens key.age with Debian's age CLI, typing the passphrase into a pty as
/// a person would (age reads passphrases only from a terminal).
fn age_unlock(key_age: &Path, out: &Path) {
    let mut child = Command::new("script")
        .args([
            "-qec",
            &format!("age -d -o '{}' '{}'", out.display(), key_age.display()),
            "/dev/null",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("script(1) from util-linux");
    use std::io::{Read, Write};
    // What the terminal shows, read to the end so script never blocks.
    let mut tty = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        while let Ok(n @ 1..) = tty.read(&mut buf) {
            let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    });
    // age asks once the pty is up; then the passphrase.
    let mut shown = String::new();
    eventually(Duration::from_secs(10), "age to ask", || {
        shown.extend(rx.try_iter());
        if shown.contains("passphrase") {
            Ok(())
        } else {
            Err(shown.clone())
        }
    });
    writeln!(child.stdin.as_mut().unwrap(), "{PASSPHRASE}").unwrap();
    assert!(child.wait().unwrap().success(), "age -d key.age");
}

#[test]
fn debian_age_decrypts_packs_and_the_recovery_doc_works() {
    let lab = Lab::new();
    let src = lab.path("src");
    awkward_tree(&src);
    lab.ok(&["run", src.to_str().unwrap()]);

    // The exported identity decrypts a pack with the real age CLI.
    let key = lab.path("key.txt");
    fs::write(&key, lab.ok(&["key", "export"])).unwrap();
    let pack = lab.sql("SELECT name FROM backup_packs ORDER BY rowid LIMIT 1");
    let pack_path = lab.data().join("repo/packs").join(&pack[..2]).join(&pack);
    let plain = lab.path("pack.plain");
    let st = Command::new("age")
        .args(["-d", "-i"])
        .arg(&key)
        .arg("-o")
        .arg(&plain)
        .arg(&pack_path)
        .status()
        .expect("age is installed by the README's test command");
    assert!(st.success());
    let plain = fs::read(&plain).unwrap();
    assert_eq!(&plain[..4], b"HPK1");
    assert_eq!(&plain[plain.len() - 4..], b"HPKT");
    // The peer's check: the file's name is the BLAKE3 of its bytes.
    assert_eq!(
        blake3::hash(&fs::read(&pack_path).unwrap())
            .to_hex()
            .as_str(),
        pack
    );

    // The passphrase path: key.age opened by age, as after losing the device.
    let unlocked = lab.path("key-from-passphrase.txt");
    age_unlock(&lab.data().join("repo/key.age"), &unlocked);
    assert_eq!(fs::read(&unlocked).unwrap(), fs::read(&key).unwrap());

    // docs/recovery.md's script, exactly as printed there.
    let doc =
        fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/recovery.md")).unwrap();
    let script = doc
        .split("<!-- recovery-script:start -->\n```sh\n")
        .nth(1)
        .and_then(|s| s.split("```\n<!-- recovery-script:end -->").next())
        .expect("the recovery script block in docs/recovery.md");
    fs::write(lab.path("recover.sh"), script).unwrap();
    let deep = (0..60)
        .map(|i| format!("level{i:02}"))
        .collect::<Vec<_>>()
        .join("/");
    for file in [
        "big.bin",
        "plain.txt",
        "empty",
        "sub/inner/hard_b",
        &format!("deep/{deep}/bottom.txt"),
    ] {
        let out = Command::new("sh")
            .arg(lab.path("recover.sh"))
            .arg(lab.data().join("hearth.db"))
            .arg(lab.data().join("repo"))
            .arg(&unlocked)
            .args(["1", file])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let original = fs::read(src.join(file)).unwrap();
        assert!(out.stdout == original, "{file} recovered by hand differs");
    }
}

#[test]
fn a_flipped_byte_or_missing_pack_is_named_with_the_files_it_affects() {
    let lab = Lab::new();
    let src = lab.path("src");
    fs::create_dir(&src).unwrap();
    // 20 MiB fills the first pack; the small file lands in the second.
    fs::write(src.join("big.bin"), noise(20 << 20, 11)).unwrap();
    fs::write(src.join("small.txt"), b"I must survive").unwrap();
    lab.ok(&["run", src.to_str().unwrap()]);
    assert_eq!(
        lab.ok(&["verify", "--read-data"]).lines().count(),
        1,
        "clean repository"
    );

    let first = lab.sql("SELECT name FROM backup_packs ORDER BY rowid LIMIT 1");
    let path = lab.data().join("repo/packs").join(&first[..2]).join(&first);
    let mut bytes = fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(&path, &bytes).unwrap();

    let (code, out, _) = lab.hearth(&["verify", "--read-data"]);
    assert_eq!(code, 1);
    assert!(out.contains(&format!("pack {first}:")), "{out}");
    assert!(out.contains("affects snapshot 1: big.bin"), "{out}");
    assert!(!out.contains("small.txt"), "{out}");

    // Everything else still restores.
    let target = lab.path("out");
    let (code, _, err) = lab.hearth(&["restore", "1", "--target", target.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("big.bin") && err.contains(&first), "{err}");
    assert_eq!(
        fs::read(target.join("small.txt")).unwrap(),
        b"I must survive"
    );
    assert!(
        !target.join("big.bin").exists(),
        "no half-restored file under the real name"
    );
    let left: Vec<_> = fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["small.txt"], "nor under a temporary one");

    // A missing pack is reported the same way, even by the quick check.
    fs::remove_file(&path).unwrap();
    let (code, out, _) = lab.hearth(&["verify"]);
    assert_eq!(code, 1);
    assert!(out.contains(&format!("pack {first}: missing")), "{out}");
    assert!(out.contains("affects snapshot 1: big.bin"), "{out}");
}

#[test]
fn bad_backup_input_gets_one_clear_line() {
    let lab = Lab::bare();
    let src = lab.path("src");
    fs::create_dir(&src).unwrap();
    let (code, _, err) = lab.hearth(&["run", src.to_str().unwrap()]);
    assert_eq!(
        (code, err.contains("hearth backup init")),
        (2, true),
        "{err}"
    );
    fs::write(lab.path("short"), "short\n").unwrap();
    let short = lab.path("short");
    let (code, _, err) = lab.hearth(&["init", "--passphrase-file", short.to_str().unwrap()]);
    assert_eq!((code, err.contains("at least 12")), (2, true), "{err}");
    assert!(
        !lab.data().join("repo/HEARTH-REPO").exists(),
        "nothing half-made"
    );

    let lab = Lab::new();
    let pp = lab.path("pp");
    let (code, _, err) = lab.hearth(&["init", "--passphrase-file", pp.to_str().unwrap()]);
    assert_eq!((code, err.contains("already exists")), (2, true), "{err}");
    let (code, _, err) = lab.hearth(&["restore", "42", "--target", "/tmp/nowhere-hearth"]);
    assert_eq!((code, err.contains("no snapshot 42")), (2, true), "{err}");
    let (code, _, err) = lab.hearth(&["restore", "latest", "--target", "/tmp/nowhere-hearth"]);
    assert_eq!((code, err.contains("no snapshot yet")), (2, true), "{err}");
    let (code, _, err) = lab.hearth(&["restore", "newest", "--target", "/tmp/nowhere-hearth"]);
    assert_eq!(
        (code, err.contains("'newest' is not a snapshot")),
        (2, true),
        "{err}"
    );
    assert!(!Path::new("/tmp/nowhere-hearth").exists());
    let (code, _, err) = lab.hearth(&["list", "--repo-id", "abc"]);
    assert_eq!(
        (code, err.contains("go with --from s3")),
        (2, true),
        "{err}"
    );
    let (code, _, err) = lab.hearth(&["run", lab.path("absent").to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    // A damaged key file is named, not panicked over.
    fs::write(lab.data().join("backup.key"), "garbage").unwrap();
    let (code, _, err) = lab.hearth(&["run", src.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("backup.key") && err.contains("damaged"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// SIGKILL at 30 random moments of a run. After each: the repository
/// verifies byte for byte, the first snapshot still restores exactly, and
/// the next run completes.
#[test]
fn killing_a_run_at_random_moments_never_damages_the_repository() {
    let lab = Lab::new();
    let src = lab.path("src");
    fs::create_dir(&src).unwrap();
    for i in 0..3 {
        fs::write(src.join(format!("file{i}.bin")), noise(3 << 20, i + 1)).unwrap();
    }
    fs::write(src.join("notes.txt"), "keep me\n".repeat(10_000)).unwrap();
    lab.ok(&["run", src.to_str().unwrap()]);
    let first = lab.path("first");
    copy_tree(&src, &first);

    let mut seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("random seed {seed}");
    let cfg = lab.path("hearth.toml");
    let mut interrupted = 0;
    for round in 0..30u64 {
        // New data every round, so there is always something being written.
        fs::write(src.join("changing.bin"), noise(5 << 20, 100 + round)).unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_millis(seed % 250);
        let before = lab.sql("SELECT count(*) FROM backup_snapshots");
        let mut child = crate::util::hearth_command()
            .arg("--config")
            .arg(&cfg)
            .args(["backup", "--data"])
            .arg(lab.data())
            .arg("run")
            .arg(&src)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Killed at a random moment: the delay is the test, not a wait.
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        if lab.sql("SELECT count(*) FROM backup_snapshots") == before {
            interrupted += 1;
        }

        let (code, out, err) = lab.hearth(&["verify", "--read-data"]);
        assert_eq!(
            code, 0,
            "round {round} (killed after {delay:?}): {out}{err}"
        );
        let target = lab.path(&format!("check{round}"));
        lab.ok(&["restore", "1", "--target", target.to_str().unwrap()]);
        assert_same_tree(&first, &target);
        fs::remove_dir_all(&target).unwrap();
    }
    println!("{interrupted} of 30 runs were killed before their snapshot was recorded");
    assert!(
        interrupted >= 5,
        "too few kills landed mid-run to prove anything: {interrupted}"
    );
    // And the next run completes and restores what is there now.
    lab.ok(&["run", src.to_str().unwrap()]);
    let last: String = lab.sql("SELECT max(id) FROM backup_snapshots");
    let target = lab.path("final");
    lab.ok(&["restore", &last, "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &target);
    assert!(
        fs::read_dir(lab.data().join("repo/tmp"))
            .unwrap()
            .next()
            .is_none(),
        "tmp cleared"
    );
}

/// `verify --sample PCT` checks that share of packs, least recently checked
/// first, so repeated runs cover the whole repository.
#[test]
fn sampled_verify_rotates_through_every_pack() {
    let lab = Lab::new();
    let src = lab.path("src");
    fs::create_dir(&src).unwrap();
    // A pack closes once it holds 16 MiB, so it holds less than 16 MiB plus
    // one 8 MiB chunk: two packs take under 48 MiB, and 52 MiB of noise
    // always makes at least three, wherever the keyed chunker cuts.
    fs::write(src.join("big.bin"), noise(52 << 20, 5)).unwrap();
    lab.ok(&["run", src.to_str().unwrap()]);
    let packs: usize = lab
        .sql("SELECT count(*) FROM backup_packs")
        .parse()
        .unwrap();
    assert!(packs >= 3, "{packs} packs");
    let share = 100 / packs as u8 + 1; // a bit over one pack per run
    let per_run = (packs * share as usize).div_ceil(100);
    let mut runs = 0;
    while lab.sql("SELECT count(*) FROM backup_packs WHERE verified_at = 0") != "0" {
        let out = lab.ok(&["verify", "--sample", &share.to_string()]);
        assert!(
            out.starts_with(&format!("checked {per_run} of {packs} packs")),
            "{out}"
        );
        runs += 1;
        assert!(runs <= packs, "the sample does not rotate");
    }
    assert!(runs >= 2, "a sample is not a full check");
}

/// The bytes each snapshot added, oldest first.
fn added_per_snapshot(lab: &Lab) -> Vec<i64> {
    lab.sql("SELECT added FROM backup_snapshots ORDER BY id")
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}
