fn main() {
    println!("cargo:rerun-if-changed=src/encode/x264_log.c");
    cc::Build::new()
        .file("src/encode/x264_log.c")
        .warnings(true)
        .compile("edgestream_x264_log");
}
