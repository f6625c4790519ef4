//! Signed update bundles for the update tests: throwaway minisign keys
//! made with Debian's `minisign`, and bundles made by the project's own
//! `scripts/make-update` (what `just release` runs).

use std::path::{Path, PathBuf};

/// A password-less minisign key pair in its own folder.
pub struct DevKey {
    pub secret: PathBuf,
    /// The public key file, for `minisign -V -p`.
    #[allow(dead_code)]
    pub public: PathBuf,
    /// The base64 line of the public key: what `update_extra_key` takes.
    pub line: String,
    _dir: tempfile::TempDir,
}

impl DevKey {
    pub fn new() -> DevKey {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("dev.key");
        let public = dir.path().join("dev.pub");
        let out = std::process::Command::new("minisign")
            .args(["-G", "-W", "-p"])
            .arg(&public)
            .arg("-s")
            .arg(&secret)
            .output()
            .expect("run minisign (scripts/bootstrap installs it)");
        assert!(
            out.status.success(),
            "minisign -G: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(&public).unwrap();
        let line = text.lines().last().unwrap().trim().to_string();
        DevKey {
            secret,
            public,
            line,
            _dir: dir,
        }
    }

    /// The configuration line that makes a Hearth trust this key too.
    pub fn config(&self) -> String {
        format!("update_extra_key = \"{}\"\n", self.line)
    }

    /// Signs `program` as `version` for `arch` into `out` with
    /// `scripts/make-update`.
    pub fn bundle(&self, program: &Path, version: &str, arch: &str, out: &Path) -> PathBuf {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/make-update");
        let result = std::process::Command::new(script)
            .args(["--key"])
            .arg(&self.secret)
            .args(["--version", version, "--arch", arch, "--out"])
            .arg(out)
            .arg(program)
            .output()
            .unwrap();
        assert!(
            result.status.success(),
            "make-update: {}",
            String::from_utf8_lossy(&result.stderr)
        );
        out.to_path_buf()
    }

    /// A bundle of the `hearth` under test, for this machine, as `version`.
    pub fn hearth_bundle(&self, version: &str, dir: &Path) -> PathBuf {
        self.bundle(
            Path::new(crate::util::HEARTH),
            version,
            std::env::consts::ARCH,
            &dir.join(format!("hearth-{version}.update")),
        )
    }
}
