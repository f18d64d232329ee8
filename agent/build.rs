// Builds the one piece Rust cannot express on stable: thread-locals in the initial-exec TLS
// model, which never call __tls_get_addr (and so never allocate) when read from a hook.
fn main() {
    println!("cargo:rerun-if-changed=csrc/tls.c");
    cc::Build::new()
        .file("csrc/tls.c")
        .flag_if_supported("-ftls-model=initial-exec")
        .compile("mapagent_tls");
    // Start the writable segments on page boundaries: the relocated (copied-on-write) data then
    // spans as few pages as its size allows, which is what the library costs every process.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,separate-loadable-segments");
    // Executed, the library is the collector (see src/collector.rs).
    println!("cargo:rustc-cdylib-link-arg=-Wl,-e,mapagent_collector_entry");
}
