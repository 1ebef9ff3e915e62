//! Where the workspace and the built plugin are.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Overrides the plugin library the tests load.
pub const PLUGIN_PATH_ENV: &str = "OD_PLUGIN_PATH";

/// The file name of the plugin library on this platform.
pub const PLUGIN_FILE_NAME: &str = if cfg!(target_os = "windows") {
    "online_desktop.dll"
} else if cfg!(target_os = "macos") {
    "libonline_desktop.dylib"
} else {
    "libonline_desktop.so"
};

/// The root of the Cargo workspace (the folder holding `include/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives inside the workspace")
        .to_path_buf()
}

/// The public header, `include/online_desktop.h`.
pub fn header_path() -> PathBuf {
    workspace_root().join("include").join("online_desktop.h")
}

/// The plugin library to test: `$OD_PLUGIN_PATH` when set, else the one
/// cargo built for this test run.
///
/// Cargo builds the cdylib of the `online-desktop` dev-dependency into
/// `target/<profile>/deps/` (with the `test-panic` feature) before it runs
/// any test, but copies it up to `target/<profile>/` only for a plain
/// `cargo build -p online-desktop`, so the copy there may be stale. Hence
/// `deps/` first, then `target/<profile>/`. A library older than the
/// plugin's sources is refused with a message instead of being tested.
pub fn plugin_path() -> PathBuf {
    if let Some(path) = std::env::var_os(PLUGIN_PATH_ENV) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{PLUGIN_PATH_ENV}={} is not a file",
            path.display()
        );
        return path;
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    let deps = exe.parent().expect("the test executable is in a folder");
    let profile = if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().unwrap_or(deps)
    } else {
        deps
    };
    let candidates = [deps.join(PLUGIN_FILE_NAME), profile.join(PLUGIN_FILE_NAME)];
    let path = candidates
        .iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the plugin library is not built (looked for {:?}); run `cargo build -p online-desktop` \
                 or set {PLUGIN_PATH_ENV}",
                candidates
            )
        })
        .clone();
    assert_fresh(&path);
    path
}

/// Panics when a source file of the plugin is newer than the library.
///
/// The sources are the ones rustc read for it, from the dep-info file
/// beside the library (`online_desktop.d`); without one there is nothing
/// to compare.
fn assert_fresh(library: &Path) {
    let Some(dir) = library.parent() else {
        return;
    };
    let Ok(dep_info) = std::fs::read_to_string(dir.join("online_desktop.d")) else {
        return;
    };
    let built = modified(library).expect("the plugin library's modification time");
    let root = workspace_root();
    // The first rule lists every source: "<target>: <source> <source> ...".
    let sources = dep_info
        .lines()
        .next()
        .and_then(|line| line.split_once(": "))
        .map_or("", |(_, sources)| sources);
    for source in sources.split_whitespace() {
        let file = root.join(source);
        if let Some(time) = modified(&file) {
            assert!(
                time <= built,
                "the plugin library {} is older than {}: it is stale. Run the tests with \
                 `cargo test` (which rebuilds it), or set {PLUGIN_PATH_ENV}",
                library.display(),
                file.display()
            );
        }
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}
