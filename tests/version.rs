//! One version everywhere: the od-abi constants, the plugin's runtime
//! version functions and table, the `online-desktop` package version in the
//! root Cargo.toml, and the `#define OD_VERSION_*` lines of the header.

use od_abi::*;
use od_tests::paths::{header_path, workspace_root};
use od_tests::plugin::{c_string, plugin};

/// `version = "..."` of the `[package]` table of a Cargo.toml.
fn package_version(manifest: &str) -> String {
    let mut in_package = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package {
            if let Some(value) = line
                .strip_prefix("version")
                .map(str::trim_start)
                .and_then(|rest| rest.strip_prefix('='))
            {
                return value.trim().trim_matches('"').to_owned();
            }
        }
    }
    panic!("no [package] version in the manifest");
}

/// The value of `#define <name> <value>` in the header.
fn header_define(header: &str, name: &str) -> u32 {
    let values: Vec<u32> = header
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("#define") && words.next() == Some(name))
                .then(|| words.next())
                .flatten()
                .map(|value| value.parse().expect("a number"))
        })
        .collect();
    assert_eq!(values.len(), 1, "{name} is defined once: {values:?}");
    values[0]
}

#[test]
fn every_version_agrees() {
    let abi = [OD_VERSION_MAJOR, OD_VERSION_MINOR, OD_VERSION_PATCH];
    let dotted = format!("{}.{}.{}", abi[0], abi[1], abi[2]);

    let manifest =
        std::fs::read_to_string(workspace_root().join("Cargo.toml")).expect("Cargo.toml");
    assert!(manifest.contains("name = \"online-desktop\""));
    assert_eq!(package_version(&manifest), dotted, "root Cargo.toml");

    let header = std::fs::read_to_string(header_path()).expect("the header");
    let defined = [
        header_define(&header, "OD_VERSION_MAJOR"),
        header_define(&header, "OD_VERSION_MINOR"),
        header_define(&header, "OD_VERSION_PATCH"),
    ];
    assert_eq!(defined, abi, "include/online_desktop.h");

    // SAFETY: the exports' true signatures.
    let runtime = unsafe {
        [
            plugin().symbol::<extern "C" fn() -> u32>("od_version_major"),
            plugin().symbol::<extern "C" fn() -> u32>("od_version_minor"),
            plugin().symbol::<extern "C" fn() -> u32>("od_version_patch"),
        ]
    }
    .map(|f| f.expect("a version function")());
    assert_eq!(runtime, abi, "od_version_major/minor/patch");

    let api = plugin().api();
    assert_eq!(
        [api.abi_major, api.abi_minor, api.abi_patch],
        abi,
        "the table"
    );
    // SAFETY: a static NUL-terminated string.
    let string = unsafe { c_string(api.version_string.expect("version_string")()) };
    assert_eq!(
        string.as_deref(),
        Some(dotted.as_str()),
        "od_version_string"
    );
}

#[test]
fn the_parsers_read_what_they_should() {
    assert_eq!(
        package_version(
            "[workspace]\nversion = \"9\"\n[package]\nname = \"x\"\nversion = \"1.2.3\"\n"
        ),
        "1.2.3"
    );
    assert_eq!(
        header_define(
            "#define OD_VERSION_MINORS 7\n#define OD_VERSION_MINOR 4\n",
            "OD_VERSION_MINOR"
        ),
        4
    );
}
