//! Forget, prune and repair-index through the real binary: space comes
//! back, what is kept stays whole, a killed prune harms nothing, and the
//! packs plus the passphrase alone rebuild the catalogue.

use std::{
    fs,
    path::Path,
    process::Stdio,
    time::{Duration, SystemTime},
};

use crate::lab::*;

/// Bytes of pack files on disk, and how many there are.
fn packs_on_disk(repo: &Path) -> (u64, usize) {
    let mut total = (0, 0);
    for sub in fs::read_dir(repo.join("packs")).unwrap() {
        for f in fs::read_dir(sub.unwrap().path()).unwrap() {
            total.0 += f.unwrap().metadata().unwrap().len();
            total.1 += 1;
        }
    }
    total
}

/// Three snapshots of a folder whose files come and go, small files
/// sharing packs with big ones so that prune must rewrite, not only delete.
fn three_generations(lab: &Lab) -> std::path::PathBuf {
    let src = lab.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a.bin"), noise(6 << 20, 1)).unwrap();
    fs::write(src.join("b.bin"), noise(6 << 20, 2)).unwrap();
    for i in 0..20 {
        fs::write(src.join(format!("small{i}.txt")), noise(4000, 10 + i)).unwrap();
    }
    lab.ok(&["run", src.to_str().unwrap()]);
    fs::remove_file(src.join("a.bin")).unwrap();
    fs::write(src.join("c.bin"), noise(6 << 20, 3)).unwrap();
    lab.ok(&["run", src.to_str().unwrap()]);
    fs::remove_file(src.join("b.bin")).unwrap();
    for i in 0..10 {
        fs::remove_file(src.join(format!("small{i}.txt"))).unwrap();
    }
    lab.ok(&["run", src.to_str().unwrap()]);
    src
}

#[test]
fn forget_then_prune_frees_the_space_and_keeps_the_rest_whole() {
    let lab = Lab::new();
    let src = three_generations(&lab);
    let repo = lab.data().join("repo");
    let (before, _) = packs_on_disk(&repo);

    // Unknown ids are refused before anything is forgotten.
    let (code, _, err) = lab.hearth(&["forget", "1", "99"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no snapshot 99"), "{err}");
    assert_eq!(lab.sql("SELECT count(*) FROM backup_snapshots"), "3");

    let out = lab.ok(&["forget", "1", "2", "--prune"]);
    assert!(out.contains("Pruned:"), "{out}");
    let (after, count) = packs_on_disk(&repo);
    // a.bin and b.bin (12 MiB of noise) and ten small files are gone.
    assert!(
        before - after > 11 << 20,
        "freed only {} bytes: {out}",
        before - after
    );
    // The index names exactly the packs on disk, and nothing is pending.
    assert_eq!(
        lab.sql("SELECT count(*) FROM backup_packs"),
        count.to_string()
    );
    assert_eq!(lab.sql("SELECT count(*) FROM backup_condemned"), "0");
    let (code, out, err) = lab.hearth(&["verify", "--read-data"]);
    assert_eq!(code, 0, "{out}{err}");
    let target = lab.path("restored");
    lab.ok(&["restore", "3", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &target);

    // Pruned snapshots do not come back when the index is rebuilt.
    lab.ok(&["repair-index"]);
    assert_eq!(
        lab.sql("SELECT group_concat(files) FROM backup_snapshots"),
        "11"
    );
    // A second prune finds nothing more to do.
    let out = lab.ok(&["prune"]);
    assert!(out.contains("0 packs deleted"), "{out}");
}

#[test]
fn the_retention_policy_dry_run_changes_nothing_and_keeps_the_newest() {
    let lab = Lab::new();
    three_generations(&lab);
    let out = lab.ok(&["forget", "--keep-daily", "0", "--dry-run"]);
    assert_eq!(out.matches("would forget").count(), 2, "{out}");
    assert_eq!(lab.sql("SELECT count(*) FROM backup_snapshots"), "3");
    // All three fall on the same day: "1 daily" keeps only the newest.
    let out = lab.ok(&["forget", "--keep-daily", "1", "--json"]);
    assert!(out.contains("\"keep\":false"), "{out}");
    assert_eq!(lab.sql("SELECT id FROM backup_snapshots"), "3");
    let (code, _, err) = lab.hearth(&["forget", "3", "--dry-run"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn killing_prune_at_random_moments_leaves_a_sound_repository() {
    let template = Lab::new();
    let src = three_generations(&template);
    template.ok(&["forget", "1", "2"]);
    let mut seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("random seed {seed}");
    for round in 0..12 {
        // A fresh copy of the forgotten-but-unpruned repository each time.
        let lab = Lab::bare();
        fs::write(lab.path("pp"), format!("{PASSPHRASE}\n")).unwrap();
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(template.data())
            .arg(lab.data())
            .status()
            .unwrap();
        assert!(status.success());
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_millis(seed % 400);
        let mut child = crate::util::hearth_command()
            .arg("--config")
            .arg(lab.path("hearth.toml"))
            .args(["backup", "--data"])
            .arg(lab.data())
            .arg("prune")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Killed at a random moment: the delay is the test, not a wait.
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        let (code, out, err) = lab.hearth(&["verify", "--read-data"]);
        assert_eq!(code, 0, "round {round}, killed after {delay:?}: {out}{err}");
        // The next prune finishes the job.
        lab.ok(&["prune"]);
        let (_, count) = packs_on_disk(&lab.data().join("repo"));
        assert_eq!(
            lab.sql("SELECT count(*) FROM backup_packs"),
            count.to_string()
        );
        let target = lab.path("restored");
        lab.ok(&["restore", "3", "--target", target.to_str().unwrap()]);
        assert_same_tree(&src, &target);
    }
}

#[test]
fn the_packs_and_the_passphrase_alone_rebuild_everything() {
    let lab = Lab::new();
    let src = lab.path("src");
    fs::create_dir(&src).unwrap();
    awkward_tree(&src);
    lab.ok(&["run", src.to_str().unwrap()]);
    fs::write(src.join("later.txt"), "added later\n").unwrap();
    lab.ok(&["run", src.to_str().unwrap()]);
    // "bytes added" is not in the snapshot blobs (it is known only after
    // the packs are written), so a rebuilt catalogue cannot show it.
    let catalogue =
        "SELECT id, time, source, files, bytes, hex(root), hex(blob) FROM backup_snapshots";
    let listed = lab.sql(catalogue);

    // Lose the database and the device key: only packs and key.age remain.
    for f in fs::read_dir(lab.data()).unwrap() {
        let p = f.unwrap().path();
        if p.file_name().unwrap() != "repo" {
            fs::remove_file(&p).unwrap();
        }
    }
    let (code, _, err) = lab.hearth(&["list"]);
    assert_ne!(code, 0, "no key, no repository: {err}");
    fs::write(lab.path("wrong"), "not the passphrase at all\n").unwrap();
    let wrong = lab.path("wrong");
    let (code, _, err) = lab.hearth(&[
        "repair-index",
        "--recover-key",
        "--passphrase-file",
        wrong.to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("passphrase is not right"), "{err}");

    let pp = lab.path("pp");
    let out = lab.ok(&[
        "repair-index",
        "--recover-key",
        "--passphrase-file",
        pp.to_str().unwrap(),
    ]);
    assert!(out.contains("2 snapshots"), "{out}");
    assert_eq!(lab.sql(catalogue), listed);
    let target = lab.path("restored");
    lab.ok(&["restore", "2", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &target);
    let (code, out, err) = lab.hearth(&["verify", "--read-data"]);
    assert_eq!(code, 0, "{out}{err}");

    // A damaged pack is left out by name, and the rest is still indexed.
    let name = lab.sql("SELECT name FROM backup_packs ORDER BY size DESC LIMIT 1");
    let path = lab.data().join("repo/packs").join(&name[..2]).join(&name);
    let mut bytes = fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    fs::write(&path, bytes).unwrap();
    let (code, out, err) = lab.hearth(&["repair-index"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains(&format!("left out pack {name}")), "{out}");
    assert!(err.contains("1 packs could not be used"), "{err}");
}
