//! Builds the XDP program (ha-ebpf) with the nightly toolchain and bpf-linker, so that
//! `include_bytes_aligned!` can embed it into the agent.
use anyhow::{Context as _, anyhow};
use cargo_metadata::MetadataCommand;

fn main() -> anyhow::Result<()> {
    // Without the `ebpf` feature (the fuzz targets, which need no XDP), embed an empty object.
    if std::env::var_os("CARGO_FEATURE_EBPF").is_none() {
        let out = std::path::PathBuf::from(std::env::var("OUT_DIR").context("OUT_DIR")?);
        std::fs::write(out.join("ha-ebpf"), []).context("writing the empty XDP object")?;
        return Ok(());
    }
    let metadata = MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = metadata
        .packages
        .into_iter()
        .find(|p| p.name.as_str() == "ha-ebpf")
        .ok_or_else(|| anyhow!("ha-ebpf package not found in the workspace"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("ha-ebpf manifest has no parent directory"))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: ebpf.name.as_str(),
            root_dir: root_dir.as_str(),
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
