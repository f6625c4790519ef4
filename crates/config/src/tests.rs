use super::*;
use std::io::Write;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

#[test]
fn defaults_are_the_documented_dev_values() {
    let c = Config::default();
    assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(c.data_dir, PathBuf::from("./hearth-data"));
    assert_eq!(c.boot_dir, PathBuf::from("/boot/firmware"));
    assert!(!c.secure_cookies);
}

#[test]
fn file_overrides_defaults_and_env_overrides_file() {
    let f = file("listen = \"0.0.0.0:80\"\ndata_dir = \"/var/lib/hearth\"\n");
    let (c, src) = Config::load(Some(f.path()), env(&[])).unwrap();
    assert_eq!(c.listen.port(), 80);
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/hearth"));
    assert_eq!(src, Source::File(f.path().to_path_buf()));

    let (c, _) = Config::load(
        Some(f.path()),
        env(&[
            ("HEARTH_LISTEN", "127.0.0.1:9"),
            ("HEARTH_SECURE_COOKIES", "true"),
        ]),
    )
    .unwrap();
    assert_eq!(c.listen.port(), 9);
    assert!(c.secure_cookies);
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/hearth"));
}

#[test]
fn unknown_file_key_is_named_with_its_line() {
    let f = file("listen = \"127.0.0.1:1\"\n\nlisten_port = 80\n");
    let err = Config::load(Some(f.path()), env(&[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("listen_port"), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(!err.contains('\n'), "one line: {err}");
}

#[test]
fn syntax_error_is_one_line_with_line_number() {
    let f = file("listen = \"127.0.0.1:1\"\ndata_dir = \n");
    let err = Config::load(Some(f.path()), env(&[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 2"), "{err}");
    assert!(!err.contains('\n'), "one line: {err}");
}

#[test]
fn bad_value_in_file_is_reported() {
    let f = file("listen = \"not an address\"\n");
    let err = Config::load(Some(f.path()), env(&[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 1"), "{err}");
}

#[test]
fn unknown_or_bad_env_var_is_named() {
    let err = Config::load(None::<&Path>, env(&[("HEARTH_LISTEN_PORT", "80")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("HEARTH_LISTEN_PORT"), "{err}");
    let err = Config::load(None::<&Path>, env(&[("HEARTH_SECURE_COOKIES", "maybe")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("HEARTH_SECURE_COOKIES"), "{err}");
    let err = Config::load(None::<&Path>, env(&[("HEARTH_LOG_LEVEL", "loud")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("HEARTH_LOG_LEVEL"), "{err}");
}

#[test]
fn missing_explicit_file_is_an_error() {
    let err = Config::load(Some(Path::new("/nonexistent/hearth.toml")), env(&[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/hearth.toml"), "{err}");
}

#[test]
fn config_path_can_come_from_env() {
    let f = file("listen = \"127.0.0.1:7\"\n");
    let (c, _) = Config::load(
        None::<&Path>,
        env(&[("HEARTH_CONFIG", f.path().to_str().unwrap())]),
    )
    .unwrap();
    assert_eq!(c.listen.port(), 7);
}
