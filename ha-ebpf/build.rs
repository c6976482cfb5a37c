// Rebuild the object when bpf-linker changes: it is the linker, but cargo does not know it.
fn main() {
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}
