//! A restore straight from the bucket (`restore --from s3`), against a real
//! three-node Garage cluster: packs are read where they lie, so nothing of
//! the repository is copied down; the tree comes back byte-identical with
//! modes and times, and a wrong passphrase or a damaged object is named.

use std::fs;

use crate::{
    garage::Garage,
    lab::{Lab, PASSPHRASE, assert_same_tree},
    s3::set_target,
    s3_recovery::awkward_backup,
};

/// `restore N --target DIR --from s3` in `lab`, after `extra` flags.
fn restore_from_bucket(
    lab: &Lab,
    snapshot: &str,
    dir: &str,
    extra: &[&str],
) -> (i32, String, String) {
    let target = lab.path(dir);
    let mut args = vec![
        "restore",
        snapshot,
        "--target",
        target.to_str().unwrap(),
        "--from",
        "s3",
    ];
    args.extend(extra);
    lab.hearth(&args)
}

#[test]
fn restore_reads_the_bucket_where_it_lies() {
    let g = Garage::start();
    let (lab, src) = awkward_backup(&g);

    // A new device given the S3 settings and the passphrase.
    let fresh = Lab::bare();
    set_target(&fresh, &g);
    fs::write(fresh.path("wrong"), "not the passphrase at all\n").unwrap();
    let wrong = fresh.path("wrong");
    let (code, out, err) = restore_from_bucket(
        &fresh,
        "1",
        "nothing",
        &["--passphrase-file", wrong.to_str().unwrap()],
    );
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("passphrase is not right"), "{err}");
    assert!(!fresh.path("nothing").exists());

    fs::write(fresh.path("pp"), format!("{PASSPHRASE}\n")).unwrap();
    let pp = fresh.path("pp");
    let pp = pp.to_str().unwrap();
    let (code, out, err) = restore_from_bucket(&fresh, "1", "restored", &["--passphrase-file", pp]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("restored "), "{out}");
    assert!(err.contains("from the S3 target where it lies"), "{err}");
    assert_same_tree(&src, &fresh.path("restored"));
    // Nothing of the repository came down, and the scratch index is gone.
    for left in [
        "repo/HEARTH-REPO",
        "repo/key.age",
        "repo/packs",
        "backup.key",
        "restore-from-s3",
        "restore-from-s3.lock",
    ] {
        assert!(!fresh.data().join(left).exists(), "{left} was left behind");
    }
    // The new device lists what the bucket holds, to pick a snapshot.
    let (code, out, err) = fresh.hearth(&["list", "--from", "s3", "--passphrase-file", pp]);
    assert_eq!(code, 0, "{out}{err}");
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{out}");
    assert!(rows[0].trim_start().starts_with("1 "), "{out}");
    assert!(rows[0].ends_with(src.to_str().unwrap()), "{out}");
    assert!(!fresh.data().join("restore-from-s3").exists());
    assert!(!fresh.data().join("restore-from-s3.lock").exists());
    let (code, out, err) = restore_from_bucket(&fresh, "2", "none", &["--passphrase-file", pp]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("no snapshot 2"), "{err}");

    // The device that made the backup, its packs here lost, restores with
    // its own key and no passphrase.
    fs::remove_dir_all(lab.data().join("repo/packs")).unwrap();
    let (code, out, err) = restore_from_bucket(&lab, "latest", "own-key", &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_same_tree(&src, &lab.path("own-key"));

    // A flipped byte in an object is found by age as the piece is read,
    // and named with its pack; the files that need it are named too.
    let client = g.client();
    let (key, _) = client
        .list("hearth/")
        .unwrap()
        .into_iter()
        .filter(|(k, _)| k.contains("/packs/"))
        .max_by_key(|(_, size)| *size)
        .unwrap();
    let mut bytes = client.get(&key).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    client.put(&key, bytes).unwrap();
    let pack = key.rsplit('/').next().unwrap();
    let (code, out, err) = restore_from_bucket(&fresh, "1", "damaged", &["--passphrase-file", pp]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains(&format!("pack {pack} is damaged")), "{err}");
    assert!(err.contains("entries could not be restored"), "{err}");
}
