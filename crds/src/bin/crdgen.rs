//! Writes the CRD YAML where the manifests and the chart expect it:
//! `deploy/crds/linx-crds.yaml` and `helm/linx/crds/linx-crds.yaml`
//! (relative to the workspace root, or to `--root DIR`). `--stdout` prints it.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let yaml = linx_crds::crds_yaml();
    if args.iter().any(|a| a == "--stdout") {
        print!("{yaml}");
        return Ok(());
    }
    let root = match args.iter().position(|a| a == "--root") {
        Some(i) => PathBuf::from(args.get(i + 1).cloned().unwrap_or_else(|| ".".into())),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."),
    };
    for rel in linx_crds::CRD_PATHS {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("a file path has a parent"))?;
        std::fs::write(&path, &yaml)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
