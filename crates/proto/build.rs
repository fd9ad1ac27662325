//! Compiles `proto/` without a system `protoc`: protox parses the files into a descriptor
//! set, tonic-prost-build generates messages, clients and servers from it, and one
//! encoded descriptor set per package is written for server reflection. Clients and
//! servers are generated only with the `grpc` feature.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use prost::Message;
use prost_types::{FileDescriptorProto, FileDescriptorSet};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let proto_root = proto_root.canonicalize()?;
    let mut files = Vec::new();
    collect_protos(&proto_root.join("herald"), &mut files)?;
    files.sort();
    println!("cargo:rerun-if-changed={}", proto_root.display());
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }

    let fds = protox::compile(&files, [&proto_root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);

    // One descriptor set per Herald package: its own files plus every file they import,
    // so a server can register exactly the packages it serves.
    let by_name: BTreeMap<&str, &FileDescriptorProto> =
        fds.file.iter().map(|f| (f.name(), f)).collect();
    let mut packages: BTreeMap<String, Vec<&FileDescriptorProto>> = BTreeMap::new();
    for file in &fds.file {
        if file.package().starts_with("herald.") {
            packages
                .entry(file.package().to_owned())
                .or_default()
                .push(file);
        }
    }
    for (package, own) in &packages {
        let mut set = FileDescriptorSet::default();
        let mut seen = std::collections::BTreeSet::new();
        for file in own {
            add_with_deps(file, &by_name, &mut seen, &mut set);
        }
        std::fs::write(out_dir.join(format!("{package}.bin")), set.encode_to_vec())?;
    }

    // Clients and servers only with the `grpc` feature: without it the generated files hold
    // plain prost messages and nothing refers to tonic.
    let grpc = std::env::var_os("CARGO_FEATURE_GRPC").is_some();
    tonic_prost_build::configure()
        // Prost with a small first encode buffer (see `codec` in lib.rs).
        .codec_path("crate::codec::ProstCodec")
        .build_client(grpc)
        .build_server(grpc)
        .compile_fds(fds)?;
    Ok(())
}

/// Adds `file` after its dependencies, depth first, so the set is in import order.
fn add_with_deps(
    file: &FileDescriptorProto,
    by_name: &BTreeMap<&str, &FileDescriptorProto>,
    seen: &mut std::collections::BTreeSet<String>,
    set: &mut FileDescriptorSet,
) {
    if !seen.insert(file.name().to_owned()) {
        return;
    }
    for dep in &file.dependency {
        if let Some(dep) = by_name.get(dep.as_str()) {
            add_with_deps(dep, by_name, seen, set);
        }
    }
    set.file.push(file.clone());
}

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
