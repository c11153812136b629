//! Compiles the wire contract with protox, so no `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=../proto");
    let files = [
        "boltfleet/v1/agent.proto",
        "boltfleet/v1/job.proto",
        "boltfleet/v1/enroll.proto",
        "boltfleet/v1/webhook.proto",
        "boltfleet/v1/admin.proto",
    ];
    let fds = protox::compile(files, ["../proto"])?;
    // No generated `Client::connect` constructor: it would clash with the `Connect` RPC, and
    // every channel is built by `tls::connect` anyway.
    tonic_prost_build::configure()
        .build_transport(false)
        // Small per-stream buffers: one agent stream per host lives for days (src/codec.rs).
        .codec_path("crate::codec::LeanCodec")
        // Stored records embed these messages; serde keeps the store to one encoding (JSON).
        .type_attribute(
            ".boltfleet.v1",
            "#[derive(serde::Serialize, serde::Deserialize)]",
        )
        .message_attribute(".boltfleet.v1", "#[serde(default)]")
        .compile_fds(fds)?;
    Ok(())
}
