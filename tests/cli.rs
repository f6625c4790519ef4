use std::io::Write;

use crate::util::{TestServer, run_hearth};

#[test]
fn version_and_default_config_print() {
    let (code, out, _) = run_hearth(&["--version"], &[]);
    assert_eq!(code, 0);
    assert!(out.starts_with("hearth "), "{out}");
    let (code, out, _) = run_hearth(&["config"], &[]);
    assert_eq!(code, 0);
    for key in [
        "listen = \"127.0.0.1:8080\"",
        "data_dir = \"./hearth-data\"",
        "boot_dir",
    ] {
        assert!(out.contains(key), "{key} in:\n{out}");
    }
}

/// The printed default file is itself a valid configuration.
#[test]
fn printed_default_config_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let (_, out, _) = run_hearth(&["config"], &[]);
    let path = dir.path().join("hearth.toml");
    std::fs::write(&path, out).unwrap();
    let missing = dir.path().join("none");
    let (code, _, err) = run_hearth(
        &[
            "--config",
            path.to_str().unwrap(),
            "db",
            "backup",
            "x.db",
            "--data",
            missing.to_str().unwrap(),
        ],
        &[],
    );
    // Config accepted; it then fails on the absent database, as bad input.
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no database at"), "{err}");
}

fn assert_bad_input(args: &[&str], env: &[(&str, &str)], needle: &str) {
    let (code, out, err) = run_hearth(args, env);
    assert_eq!(code, 2, "exit code for {args:?}: {err}");
    assert!(err.contains(needle), "{needle:?} in {err:?}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.is_empty());
}

#[test]
fn bad_config_exits_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::File::create(&p)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        p.to_str().unwrap().to_string()
    };
    let unknown = write(
        "unknown.toml",
        "listen = \"127.0.0.1:0\"\nadmin_password = \"x\"\n",
    );
    assert_bad_input(&["--config", &unknown, "serve"], &[], "admin_password");
    let syntax = write("syntax.toml", "listen = [\n");
    assert_bad_input(&["--config", &syntax, "serve"], &[], "line 1");
    let badval = write("badval.toml", "listen = \"nowhere\"\n");
    assert_bad_input(&["--config", &badval, "serve"], &[], "badval.toml");
    assert_bad_input(
        &["--config", "/no/such/file.toml", "serve"],
        &[],
        "/no/such/file.toml",
    );
    let ok = write("ok.toml", "");
    assert_bad_input(
        &["--config", &ok, "serve"],
        &[("HEARTH_LISTEN_PORT", "80")],
        "HEARTH_LISTEN_PORT",
    );
    assert_bad_input(
        &["--config", &ok, "serve"],
        &[("HEARTH_LOG_LEVEL", "loud")],
        "HEARTH_LOG_LEVEL",
    );
    assert_bad_input(
        &["serve", "--listen", "not-an-address"],
        &[],
        "not-an-address",
    );
    assert_bad_input(&["frobnicate"], &[], "frobnicate");
    assert_bad_input(&["discover", "--seconds", "0"], &[], "--seconds");
    assert_bad_input(&["discover", "--seconds", "soon"], &[], "soon");
}

#[test]
fn too_new_database_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hearth.db");
    {
        let c = hearth_store::rusqlite::Connection::open(&db).unwrap();
        c.pragma_update(None, "user_version", 999).unwrap();
    }
    let cfg = dir.path().join("hearth.toml");
    std::fs::write(&cfg, "").unwrap();
    let (code, _, err) = run_hearth(
        &[
            "--config",
            cfg.to_str().unwrap(),
            "serve",
            "--data",
            dir.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("newer Hearth") && err.contains("999"), "{err}");
    let c = hearth_store::rusqlite::Connection::open(&db).unwrap();
    let v: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 999, "database untouched");
    let mode: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_ne!(mode, "wal", "not even switched to WAL");
}

#[tokio::test]
async fn db_backup_copies_a_live_database() {
    let server = TestServer::start();
    let mut browser = server.client();
    assert_eq!(browser.claim("backup-me-please").await.status, 303);
    let dest = server.dir.path().join("copy.db");
    let data = server.data_dir();
    let args = [
        "db",
        "backup",
        dest.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ];
    let (code, out, err) = run_hearth(&args, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("copy.db"));
    let c = hearth_store::rusqlite::Connection::open(&dest).unwrap();
    let admins: i64 = c
        .query_row("SELECT count(*) FROM admin", [], |r| r.get(0))
        .unwrap();
    assert_eq!(admins, 1);
    // Never overwrites.
    let (code, _, err) = run_hearth(&args, &[]);
    assert_ne!(code, 0);
    assert!(err.contains("already exists"), "{err}");
}
