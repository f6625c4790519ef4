//! Signed updates through the real binary, outside systemd: a good bundle
//! checks and stages; each kind of bad bundle is refused with its own
//! sentence and leaves nothing staged or switched; kill -9 anywhere in
//! staging and switching leaves a device that starts the old or the new
//! version (docs/updates.md).

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Stdio},
    time::Duration,
};

use crate::{
    bundles::DevKey,
    util::{HEARTH, TestServer, hearth_command, run_hearth},
};

/// `hearth --config CONFIG update ARGS... --data DATA`.
fn update(config: &Path, data: &Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["--config", config.to_str().unwrap(), "update"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--data", data.to_str().unwrap()]);
    run_hearth(&all, &[])
}

/// Everything in the update folder except the database copy, as
/// "name -> link target" lines: what "nothing staged or switched" compares.
fn state_of(data: &Path) -> Vec<String> {
    let dir = data.join("update");
    let mut out = Vec::new();
    for sub in [dir.clone(), dir.join("slots")] {
        let Ok(list) = std::fs::read_dir(&sub) else {
            continue;
        };
        for e in list.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let link = std::fs::read_link(e.path())
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            out.push(format!(
                "{}/{name} -> {link}",
                sub.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    out.sort();
    out
}

/// The byte offsets and sizes of a ustar file's members.
fn members(bundle: &[u8]) -> Vec<(String, usize, usize)> {
    let mut at = 0;
    let mut out = Vec::new();
    while at + 512 <= bundle.len() && bundle[at] != 0 {
        let header = &bundle[at..at + 512];
        let name = String::from_utf8_lossy(&header[..100])
            .trim_end_matches('\0')
            .to_string();
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&header[124..136])
                .trim_end_matches(['\0', ' '])
                .trim(),
            8,
        )
        .unwrap();
        out.push((name, at + 512, size));
        at += 512 + size.div_ceil(512) * 512;
    }
    out
}

fn flip(path: &Path, member: &str, within: usize, out: &Path) -> PathBuf {
    let mut bytes = std::fs::read(path).unwrap();
    let (_, start, size) = members(&bytes).into_iter().find(|m| m.0 == member).unwrap();
    bytes[start + within.min(size - 1)] ^= 0x20;
    std::fs::write(out, bytes).unwrap();
    out.to_path_buf()
}

/// A small stand-in program for the refusal cases (they never run it).
fn small_program(dir: &Path, bytes: usize) -> PathBuf {
    let path = dir.join("program");
    let mut data = b"#!/bin/sh\nexit 0\n".to_vec();
    data.resize(bytes, b'#');
    std::fs::write(&path, data).unwrap();
    path
}

#[test]
fn a_good_bundle_stages_and_each_bad_one_is_refused_with_its_own_sentence() {
    let key = DevKey::new();
    let stranger = DevKey::new();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hearth.toml");
    std::fs::write(&config, key.config()).unwrap();
    let data = dir.path().join("data");
    let here = std::env::consts::ARCH;
    let small = small_program(dir.path(), 200_000);
    let bundle = |k: &DevKey, version: &str, arch: &str, name: &str| {
        k.bundle(&small, version, arch, &dir.path().join(name))
    };

    // A good bundle of the real binary: check keeps nothing.
    let good = key.hearth_bundle("0.2.0", dir.path());
    let (code, out, err) = update(&config, &data, &["check", good.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Hearth 0.2.0") && out.contains("can be installed"),
        "{out}"
    );
    assert!(
        state_of(&data).is_empty(),
        "check staged something: {:?}",
        state_of(&data)
    );

    let other_arch = if here == "aarch64" {
        "x86_64"
    } else {
        "aarch64"
    };
    let flipped_payload = {
        let b = bundle(&key, "0.2.0", here, "payload.update");
        flip(
            &b,
            "hearth",
            100_000,
            &dir.path().join("flipped-payload.update"),
        )
    };
    let flipped_manifest = {
        let b = bundle(&key, "0.2.0", here, "manifest.update");
        // Inside `version = "0.2.0"`: still valid TOML, but not what was signed.
        flip(
            &b,
            "manifest.toml",
            20,
            &dir.path().join("flipped-manifest.update"),
        )
    };
    let truncated = {
        let b = bundle(&key, "0.2.0", here, "whole.update");
        let bytes = std::fs::read(&b).unwrap();
        let (_, start, _) = members(&bytes)
            .into_iter()
            .find(|m| m.0 == "hearth")
            .unwrap();
        let path = dir.path().join("truncated.update");
        std::fs::write(&path, &bytes[..start + 50_000]).unwrap();
        path
    };
    let arch_sentence = format!("is for {other_arch} computers");
    let not_tar = dir.path().join("photo.update");
    std::fs::write(&not_tar, b"\x89PNG\r\n\x1a\n not an update at all").unwrap();
    let cases: Vec<(&str, PathBuf, &str)> = vec![
        (
            "wrong key",
            bundle(&stranger, "0.2.0", here, "stranger.update"),
            "signed with a key this Hearth does not trust",
        ),
        (
            "flipped payload byte",
            flipped_payload,
            "does not match the checksum in its signed manifest",
        ),
        (
            "flipped manifest byte",
            flipped_manifest,
            "signature does not match its manifest",
        ),
        ("truncated", truncated, "incomplete: it ends early"),
        (
            "another architecture",
            bundle(&key, "0.2.0", other_arch, "arch.update"),
            &arch_sentence,
        ),
        (
            "downgrade",
            bundle(&key, "0.0.9", here, "old.update"),
            "not newer than the running 0.1.0",
        ),
        (
            "same version",
            bundle(&key, "0.1.0", here, "same.update"),
            "tick \"install an older version\"",
        ),
        ("not a bundle", not_tar, "not a Hearth update file"),
    ];
    for (what, file, sentence) in &cases {
        for command in ["check", "install"] {
            let before = state_of(&data);
            let (code, out, err) = update(&config, &data, &[command, file.to_str().unwrap()]);
            assert_eq!(code, 2, "{what} ({command}) should be refused: {out}{err}");
            assert!(
                err.contains(sentence),
                "{what} ({command}): wanted {sentence:?}, got {err}"
            );
            assert_eq!(err.lines().count(), 1, "one sentence: {err}");
            assert_eq!(
                state_of(&data),
                before,
                "{what} ({command}) changed the update folder"
            );
        }
    }

    // The box: an older version is accepted when asked for.
    let (code, out, err) = update(
        &config,
        &data,
        &["check", "--allow-older", cases[5].1.to_str().unwrap()],
    );
    assert_eq!(code, 0, "--allow-older: {out}{err}");

    // Install the good one: staged into a slot, `current` names it, the
    // program is byte for byte the one signed.
    let (code, out, err) = update(&config, &data, &["install", good.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let current = std::fs::read_link(data.join("update/current")).unwrap();
    let program = data.join("update").join(&current).join("hearth");
    assert_eq!(
        std::fs::read(&program).unwrap(),
        std::fs::read(HEARTH).unwrap()
    );
    let (_, status, _) = update(&config, &data, &["status"]);
    assert!(
        status.contains("installed update (what hearth serve starts): 0.2.0"),
        "{status}"
    );
    assert!(
        status.contains("on trial: 0.2.0 (from 0.1.0, 0 start(s))"),
        "{status}"
    );
    assert!(
        state_of(&data).iter().all(|l| !l.contains(".staging-")),
        "left-over staging folder: {:?}",
        state_of(&data)
    );
}

/// A file system too small for the bundle (a tmpfs the test mounts).
#[test]
fn a_bundle_that_does_not_fit_is_refused_and_nothing_is_left() {
    let key = DevKey::new();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hearth.toml");
    std::fs::write(&config, key.config()).unwrap();
    let small_fs = dir.path().join("small");
    std::fs::create_dir(&small_fs).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "hearth-test"])
        .arg(&small_fs)
        .status()
        .unwrap();
    assert!(mounted.success(), "mount a tmpfs (the tests run as root)");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(small_fs.clone());
    let data = small_fs.join("data");
    let big = key.bundle(
        &small_program(dir.path(), 12_000_000),
        "0.2.0",
        std::env::consts::ARCH,
        &dir.path().join("big.update"),
    );
    for command in ["check", "install"] {
        let (code, out, err) = update(&config, &data, &[command, big.to_str().unwrap()]);
        assert_eq!(code, 2, "{command}: {out}{err}");
        assert!(
            err.contains("not enough free space for the update: it needs"),
            "{command}: {err}"
        );
        assert!(
            state_of(&data)
                .iter()
                .all(|l| l.starts_with("update/slots ->")),
            "{:?}",
            state_of(&data)
        );
    }
}

/// `hearth --config CONFIG serve --data DATA` on a port the kernel picks,
/// its log discarded.
fn serve_command(config: &Path, data: &Path) -> std::process::Command {
    let mut cmd = hearth_command();
    cmd.arg("--config")
        .arg(config)
        .arg("serve")
        .arg("--data")
        .arg(data)
        .args(["--listen", "127.0.0.1:0"])
        .stderr(Stdio::null());
    cmd
}

/// Starts `hearth serve` on `data` and returns it once it printed its
/// address (or `None` if it exited first).
fn start_serve(config: &Path, data: &Path) -> (Child, Option<String>) {
    let mut child = serve_command(config, data)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("Hearth is ready at ") {
                let _ = tx.send(url.trim_end_matches('/').to_string());
            }
        }
    });
    let url = rx.recv_timeout(Duration::from_secs(60)).ok();
    (child, url)
}

fn kill_nine(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_nine_while_staging_or_switching_still_starts_the_old_or_the_new_version() {
    let key = DevKey::new();
    let mut server = TestServer::start_configured(&[], &key.config(), &[]);
    // Something in the database that must survive every round.
    server.client().claim("correct horse battery staple").await;
    server.stop();
    let (config, data) = (server.config_path(), server.data_dir());
    let bundles = tempfile::tempdir().unwrap();
    let mut dice = crate::util::Dice::new("kill -9 rounds");
    let mut running = "0.1.0".to_string();
    let (mut kept_old, mut got_new) = (0, 0);
    // How long an install takes here (one into a throwaway folder), so
    // the kills land inside it.
    let install_ms = {
        let scratch = tempfile::tempdir().unwrap();
        std::fs::create_dir(scratch.path().join("data")).unwrap();
        std::fs::copy(
            data.join("hearth.db"),
            scratch.path().join("data/hearth.db"),
        )
        .unwrap();
        let bundle = key.hearth_bundle("0.2.0", scratch.path());
        let started = std::time::Instant::now();
        let (code, out, err) = update(
            &config,
            &scratch.path().join("data"),
            &["install", bundle.to_str().unwrap()],
        );
        assert_eq!(code, 0, "{out}{err}");
        (started.elapsed().as_millis() as u64).max(50)
    };
    println!("kill -9 rounds: an install takes {install_ms} ms here");

    for round in 0..10 {
        let version = format!("0.{}.0", round + 2);
        let bundle = key.hearth_bundle(&version, bundles.path());
        // 1. kill -9 `hearth update install` part-way.
        // Half the kills land inside the install, half after it.
        let delay = dice.below(2 * install_ms);
        let mut install = hearth_command()
            .arg("--config")
            .arg(&config)
            .args(["update", "install"])
            .arg(&bundle)
            .arg("--data")
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let finished = install.try_wait().unwrap().is_some();
        kill_nine(&mut install);
        // 2. kill -9 the next start part-way (launcher, exec, confirm).
        let serve_delay = dice.below(1_500);
        let mut serve = serve_command(&config, &data)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(serve_delay));
        kill_nine(&mut serve);

        // 3. Whatever happened, the device starts, healthy, old or new.
        let (mut child, url) = start_serve(&config, &data);
        let url =
            url.unwrap_or_else(|| panic!("round {round}: hearth did not start after the kills"));
        let body = reqwest::get(format!("{url}/healthz"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let now = body
            .trim()
            .strip_prefix("ok ")
            .unwrap_or_else(|| panic!("round {round}: /healthz said {body:?}"));
        assert!(
            now == running || now == version,
            "round {round}: runs {now}, wanted {running} (old) or {version} (new)"
        );
        // The admin account (in the database, copied and maybe restored)
        // is still there: the login page, not the claim page.
        let page = reqwest::get(format!("{url}/admin")).await.unwrap();
        assert!(
            page.url().path().starts_with("/login"),
            "round {round}: {}",
            page.url()
        );
        println!(
            "round {round}: install killed after {delay} ms{}, start killed after {serve_delay} ms: runs {now}",
            if finished { " (it had finished)" } else { "" }
        );
        if now == version {
            got_new += 1;
        } else {
            kept_old += 1;
        }
        running = now.to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let status = child.wait().unwrap();
        assert!(status.success(), "round {round}: clean stop: {status:?}");
        let _ = std::fs::remove_file(&bundle);
    }
    println!("kill -9 rounds: {got_new} ended on the new version, {kept_old} on the old");
}
