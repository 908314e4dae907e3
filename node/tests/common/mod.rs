//! Helpers shared by the node's integration tests.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh directory under the system's temporary directory, removed when dropped.
pub struct TestDirectory {
    path: PathBuf,
}

impl TestDirectory {
    /// A new, empty directory whose name starts with `berth-{name}`.
    pub fn new(name: &str) -> TestDirectory {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "berth-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create a test directory");
        TestDirectory { path }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The names in the directory, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.path)
            .expect("list the test directory")
            .map(|entry| {
                entry
                    .expect("a directory entry")
                    .file_name()
                    .into_string()
                    .expect("a UTF-8 name")
            })
            .collect();
        names.sort();
        names
    }

    /// Every file's name and contents, sorted by name.
    pub fn contents(&self) -> Vec<(String, Vec<u8>)> {
        self.names()
            .into_iter()
            .map(|name| {
                let bytes = fs::read(self.path.join(&name)).expect("read a test file");
                (name, bytes)
            })
            .collect()
    }
}

impl Drop for TestDirectory {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}
