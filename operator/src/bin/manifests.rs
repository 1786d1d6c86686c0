//! Writes `deploy/linx.yaml` (relative to the workspace root, or `--root DIR`).

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = match args.iter().position(|a| a == "--root") {
        Some(i) => PathBuf::from(args.get(i + 1).cloned().unwrap_or_else(|| ".".into())),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."),
    };
    let path = root.join(linx_operator::manifests::DEPLOY_PATH);
    std::fs::create_dir_all(path.parent().expect("a file path has a parent"))?;
    std::fs::write(&path, linx_operator::manifests::deploy_yaml())?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
