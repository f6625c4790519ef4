//! A real three-node Garage cluster on 127.0.0.1 for the S3 target's tests
//! (scripts/garage-cluster does the work: ports, layout with replication
//! factor 3, a key and the bucket `hearth`). Dropped, it stops every node
//! and removes its folders.

use std::{collections::HashMap, path::PathBuf, process::Command};

pub struct Garage {
    dir: tempfile::TempDir,
    env: HashMap<String, String>,
}

impl Garage {
    pub fn start() -> Garage {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(script())
            .args(["start", dir.path().to_str().unwrap()])
            .output()
            .expect(
                "scripts/garage-cluster runs (garage is installed by the README's test command)",
            );
        assert!(
            out.status.success(),
            "garage-cluster start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(dir.path().join("env")).unwrap();
        let env = text
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Garage { dir, env }
    }

    fn var(&self, k: &str) -> &str {
        &self.env[k]
    }

    pub fn endpoint(&self) -> &str {
        self.var("S3_ENDPOINT")
    }

    pub fn key_id(&self) -> &str {
        self.var("AWS_ACCESS_KEY_ID")
    }

    pub fn secret(&self) -> &str {
        self.var("AWS_SECRET_ACCESS_KEY")
    }

    /// The secret in a file, for `--secret-file`.
    pub fn secret_file(&self) -> PathBuf {
        let path = self.dir.path().join("secret");
        std::fs::write(&path, format!("{}\n", self.secret())).unwrap();
        path
    }

    /// The arguments of `hearth backup target set` for this cluster.
    pub fn set_args(&self) -> Vec<String> {
        [
            "target",
            "set",
            "--endpoint",
            self.endpoint(),
            "--bucket",
            "hearth",
            "--access-key",
            self.key_id(),
            "--secret-file",
            self.secret_file().to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec()
    }

    /// A client of our own, to read and write objects behind Hearth's back.
    pub fn client(&self) -> hearth_s3::Client {
        hearth_s3::Client::new(
            &hearth_s3::Target {
                endpoint: self.endpoint().into(),
                region: "garage".into(),
                bucket: "hearth".into(),
                access_key: self.key_id().into(),
                ca: String::new(),
            },
            self.secret(),
        )
        .unwrap()
    }

    pub fn stop_node(&self, n: u8) {
        self.node("stop-node", n);
    }

    pub fn start_node(&self, n: u8) {
        self.node("start-node", n);
    }

    fn node(&self, what: &str, n: u8) {
        let ok = Command::new(script())
            .args([what, self.dir.path().to_str().unwrap(), &n.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "garage-cluster {what} {n}");
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .args(["stop", self.dir.path().to_str().unwrap()])
            .status();
    }
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/garage-cluster")
}
