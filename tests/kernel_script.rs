//! `scripts/kernel.sh`, the notebooks' kernel launcher: which crate folder a
//! kernel gets. A later kernel reuses the folder of one that has exited (so
//! cargo finds the rlhf-lab crate already built there); kernels running at the
//! same time never share one; every folder's parent pins crates.io to the
//! vendored copy of Cargo.lock. evcxr itself is replaced by a script that
//! records the folder it was given and waits.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Setup {
    root: PathBuf,
    kernels: PathBuf,
}

/// A scratch folder with a fake evcxr_jupyter and a vendor folder already in
/// place for this Cargo.lock (so the launcher does not run `cargo vendor`).
fn setup(name: &str) -> Setup {
    let root = common::scratch(name);
    let lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock");
    let hash = Command::new("sha256sum")
        .arg(&lock)
        .output()
        .expect("sha256sum");
    let hash = String::from_utf8(hash.stdout).unwrap()[..16].to_string();
    std::fs::create_dir_all(root.join(format!("cache/rlhf-lab/vendor-{hash}"))).unwrap();
    let fake = root.join("fake-evcxr.sh");
    std::fs::write(
        &fake,
        "#!/usr/bin/env bash\necho \"$EVCXR_TMPDIR\" > \"$FAKE_OUT\"\nexec sleep \"${FAKE_SLEEP:-0}\"\n",
    )
    .unwrap();
    Command::new("chmod").arg("+x").arg(&fake).status().unwrap();
    Setup {
        kernels: root.join("kernels"),
        root,
    }
}

impl Setup {
    /// Start the launcher; the fake kernel writes its folder to `out` and
    /// lives `sleep` seconds.
    fn start(&self, out: &str, sleep: u32, named: Option<&Path>) -> Child {
        let mut cmd = Command::new("bash");
        cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kernel.sh"))
            .env("RLHF_LAB_KERNELS", &self.kernels)
            .env("XDG_CACHE_HOME", self.root.join("cache"))
            .env("EVCXR_JUPYTER", self.root.join("fake-evcxr.sh"))
            .env("FAKE_OUT", self.root.join(out))
            .env("FAKE_SLEEP", sleep.to_string())
            .env_remove("RLHF_LAB_KERNEL_DIR")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(dir) = named {
            cmd.env("RLHF_LAB_KERNEL_DIR", dir);
        }
        cmd.spawn().expect("start scripts/kernel.sh")
    }

    fn run(&self, out: &str, named: Option<&Path>) -> Output {
        self.start(out, 0, named).wait_with_output().unwrap()
    }

    /// The folder the fake kernel was given, once it has written it.
    fn folder(&self, out: &str) -> PathBuf {
        let path = self.root.join(out);
        let start = Instant::now();
        while !path.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no kernel wrote {out}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        loop {
            let text = std::fs::read_to_string(&path).unwrap();
            if text.ends_with('\n') {
                return PathBuf::from(text.trim());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "kernel.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_later_kernel_reuses_the_folder_of_one_that_exited() {
    let s = setup("reuse");
    ok(&s.run("first", None));
    ok(&s.run("second", None));
    assert_eq!(s.folder("first"), s.kernels.join("kernel-1"));
    assert_eq!(s.folder("second"), s.kernels.join("kernel-1"));
    // The folder holds the project's lock file, and its parent pins crates.io
    // to the vendored copy of exactly those versions.
    let lock = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock")).unwrap();
    assert_eq!(
        std::fs::read(s.kernels.join("kernel-1/Cargo.lock")).unwrap(),
        lock
    );
    let config = std::fs::read_to_string(s.kernels.join(".cargo/config.toml")).unwrap();
    assert!(
        config.contains("replace-with = \"rlhf-lab-locked\""),
        "{config}"
    );
}

#[test]
fn kernels_running_at_once_get_different_folders() {
    let s = setup("concurrent");
    let mut first = s.start("first", 30, None);
    let held = s.folder("first");
    ok(&s.run("second", None));
    assert_eq!(held, s.kernels.join("kernel-1"));
    assert_eq!(s.folder("second"), s.kernels.join("kernel-2"));
    first.kill().unwrap();
    first.wait().unwrap();
}

#[test]
fn a_named_folder_in_use_is_refused_and_its_parent_is_pinned() {
    let s = setup("named");
    let named = s.root.join("notebooks/run");
    let mut first = s.start("first", 30, Some(&named));
    assert_eq!(s.folder("first"), named);
    let second = s.run("second", Some(&named));
    first.kill().unwrap();
    first.wait().unwrap();
    common::assert_clear_error(&second, &["in use by another kernel", "notebooks/run"]);
    let config = std::fs::read_to_string(s.root.join("notebooks/.cargo/config.toml")).unwrap();
    assert!(
        config.contains("replace-with = \"rlhf-lab-locked\""),
        "{config}"
    );
    // Once the first kernel has exited the folder is free again.
    ok(&s.run("third", Some(&named)));
    assert_eq!(s.folder("third"), named);
}
