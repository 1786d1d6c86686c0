//! The installer on real conflists shaped like Calico's, Cilium's chaining
//! mode (behind the AWS VPC CNI), Flannel's and bridge-only ones (a
//! `.conflist` and a single-plugin `.conf`): inserted once at the end,
//! idempotent, removed cleanly, replaced atomically, and unparseable files
//! left untouched with an error.
//!
//! The installed text of each is compared with `conflists/NAME.installed`
//! (`LINX_BLESS=1` rewrites those files).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use linx_cni::conflist::{self, ConflistError, Settings};
use linx_cni::plugin::FailurePolicy;
use serde_json::Value;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/conflists")
        .join(name)
}

/// A fresh configuration directory with `file` as `10-<file>` and a later
/// file the runtime would not use.
fn node_dir(file: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "linx-cni-conflist-{}-{}",
        std::process::id(),
        file.replace('.', "-")
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("10-{file}"));
    std::fs::copy(data(file), &path).unwrap();
    std::fs::write(
        dir.join("99-later.conflist"),
        r#"{"cniVersion":"1.0.0","name":"later","plugins":[{"type":"ptp"}]}"#,
    )
    .unwrap();
    (dir, path)
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn plugins(v: &Value) -> Vec<Value> {
    v["plugins"].as_array().unwrap().clone()
}

/// Files in `dir` other than the ones named (no leftover temporaries).
fn others(dir: &Path, known: &[&Path]) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| !known.contains(&p.as_path()))
        .map(|p| p.display().to_string())
        .collect();
    v.sort();
    v
}

fn golden(name: &str, text: &str) {
    let path = data(&format!("{name}.installed"));
    if std::env::var("LINX_BLESS").as_deref() == Ok("1") {
        std::fs::write(&path, text).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} missing: run with LINX_BLESS=1", path.display()));
    assert_eq!(
        text, want,
        "{name}: the installed text differs from its golden file"
    );
}

fn check_conflist(file: &str) {
    let (dir, path) = node_dir(file);
    let later = dir.join("99-later.conflist");
    let original = std::fs::read_to_string(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let entry = Settings::default().entry();
    let inode = std::fs::metadata(&path).unwrap().ino();

    // Inserted once, at the end, into the file the runtime uses.
    let out = conflist::install(&dir, None, &entry).unwrap();
    assert_eq!(
        (out.path.as_deref(), out.changed),
        (Some(path.as_path()), true)
    );
    let installed = std::fs::read_to_string(&path).unwrap();
    golden(file, &installed);
    let (before, after) = (json(&original), json(&installed));
    let mut want = plugins(&before);
    want.push(entry.clone());
    assert_eq!(
        plugins(&after),
        want,
        "{file}: other plugins kept in order, ours last"
    );
    for (k, v) in before.as_object().unwrap() {
        if k != "plugins" {
            assert_eq!(&after[k], v, "{file}: key {k} kept");
        }
    }
    // Replaced by a rename (a new inode), with the old file's mode, and no
    // temporary left behind; the later file is not touched.
    let meta = std::fs::metadata(&path).unwrap();
    assert_ne!(
        meta.ino(),
        inode,
        "{file}: replaced, not rewritten in place"
    );
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(others(&dir, &[&path, &later]), Vec::<String>::new());
    assert_eq!(
        plugins(&json(&std::fs::read_to_string(&later).unwrap())).len(),
        1
    );

    // Idempotent: nothing written the second time.
    let inode = meta.ino();
    let again = conflist::install(&dir, None, &entry).unwrap();
    assert!(!again.changed);
    assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), installed);

    // Changed settings: updated in place in the list, still once.
    let open = Settings {
        failure_policy: FailurePolicy::FailOpen,
        ..Settings::default()
    }
    .entry();
    assert!(conflist::install(&dir, None, &open).unwrap().changed);
    let updated = plugins(&json(&std::fs::read_to_string(&path).unwrap()));
    assert_eq!(updated.len(), want.len());
    assert_eq!(updated.last(), Some(&open));

    // Removed cleanly: the original text, byte for byte.
    assert_eq!(conflist::uninstall(&dir).unwrap(), vec![path.clone()]);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), original);
    assert!(conflist::uninstall(&dir).unwrap().is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn calico() {
    check_conflist("calico.conflist");
}

#[test]
fn cilium_chaining_mode() {
    check_conflist("cilium-chaining.conflist");
}

#[test]
fn flannel() {
    check_conflist("flannel.conflist");
}

#[test]
fn bridge_conflist() {
    check_conflist("bridge.conflist");
}

#[test]
fn a_single_plugin_conf_becomes_a_conflist() {
    let (dir, conf) = node_dir("bridge.conf");
    let original = json(&std::fs::read_to_string(&conf).unwrap());
    let entry = Settings::default().entry();
    let out = conflist::install(&dir, None, &entry).unwrap();
    let list = dir.join("10-bridge.conflist");
    assert_eq!(
        (out.path.as_deref(), out.changed),
        (Some(list.as_path()), true)
    );
    assert!(!conf.exists(), "the .conf is replaced by the .conflist");
    let text = std::fs::read_to_string(&list).unwrap();
    golden("bridge.conf", &text);
    let v = json(&text);
    assert_eq!(
        (&v["cniVersion"], &v["name"]),
        (&original["cniVersion"], &original["name"])
    );
    assert_eq!(plugins(&v), vec![original.clone(), entry.clone()]);
    // Now a conflist: the second install finds it and changes nothing.
    assert!(!conflist::install(&dir, None, &entry).unwrap().changed);
    conflist::uninstall(&dir).unwrap();
    let v = json(&std::fs::read_to_string(&list).unwrap());
    assert_eq!(plugins(&v), vec![original]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unparseable_file_is_left_untouched_with_its_position() {
    let (dir, _) = node_dir("calico.conflist");
    let bad = dir.join("05-broken.conflist");
    std::fs::copy(data("broken.conflist.bad"), &bad).unwrap();
    let before = std::fs::read(&bad).unwrap();
    let err = conflist::install(&dir, None, &Settings::default().entry()).unwrap_err();
    match &err {
        ConflistError::Parse {
            path, line, column, ..
        } => assert_eq!((path, *line, *column), (&bad, 5, 23)),
        other => panic!("{other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("05-broken.conflist") && msg.contains("left untouched"),
        "{msg}"
    );
    assert_eq!(std::fs::read(&bad).unwrap(), before);
    assert_eq!(
        others(&dir, &[&bad]),
        vec![
            dir.join("10-calico.conflist").display().to_string(),
            dir.join("99-later.conflist").display().to_string()
        ]
    );
    // A list whose plugins are not objects: also refused, untouched.
    let odd = dir.join("01-odd.conflist");
    std::fs::write(&odd, r#"{"name":"x","plugins":"bridge"}"#).unwrap();
    let err = conflist::install(&dir, None, &Settings::default().entry()).unwrap_err();
    assert!(matches!(err, ConflistError::Shape { .. }), "{err}");
    assert_eq!(
        std::fs::read_to_string(&odd).unwrap(),
        r#"{"name":"x","plugins":"bridge"}"#
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn no_configuration_yet_means_nothing_to_do() {
    let dir = std::env::temp_dir().join(format!("linx-cni-conflist-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = conflist::install(&dir, None, &Settings::default().entry()).unwrap();
    assert_eq!((out.path, out.changed), (None, false));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_binary_is_copied_once_and_removed() {
    let dir = std::env::temp_dir().join(format!("linx-cni-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("source");
    std::fs::write(&src, b"#!/bin/true\n").unwrap();
    assert!(conflist::install_binary(&src, &dir).unwrap());
    let dest = dir.join("linx-cni");
    assert_eq!(std::fs::read(&dest).unwrap(), b"#!/bin/true\n");
    assert_eq!(
        std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert!(!conflist::install_binary(&src, &dir).unwrap());
    conflist::remove_binary(&dir).unwrap();
    conflist::remove_binary(&dir).unwrap();
    assert!(!dest.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
