use std::process::Command;

/// The hardening in systemd/hearth.service, scored by systemd itself.
#[test]
fn systemd_unit_exposure_is_at_most_2_9() {
    let unit = concat!(env!("CARGO_MANIFEST_DIR"), "/../systemd/hearth.service");
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager", unit])
        .output()
        .expect("systemd-analyze is part of systemd; run the README's test command");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| {
            panic!(
                "no score in:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unparsable: {line}"));
    println!("{line}");
    assert!(score <= 2.9, "{line}");
}
