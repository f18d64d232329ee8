// Builds the one piece Rust cannot express on stable: thread-locals in the initial-exec TLS
// model, which never call __tls_get_addr (and so never allocate) when read from a hook.
fn main() {
    println!("cargo:rerun-if-changed=csrc/tls.c");
    cc::Build::new()
        .file("csrc/tls.c")
        .flag_if_supported("-ftls-model=initial-exec")
        .compile("mapagent_tls");
}
