//! Embeds the committed conformance corpus (`fixtures/corpus`) in the binary, so that an
//! installed `lossref` can export and check against it without the repository.

use std::fs;
use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json" || e == "npz") {
            out.push(path);
        }
    }
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"))
        .join("fixtures/corpus");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut found = Vec::new();
    files(&root, &mut found);
    found.sort();
    let mut code = String::from("/// The corpus files: (path within the corpus, bytes).\nstatic EMBEDDED_CORPUS: &[(&str, &[u8])] = &[\n");
    for path in found {
        let rel = path
            .strip_prefix(&root)
            .expect("under the root")
            .to_string_lossy()
            .replace('\\', "/");
        // part manifests of an unfinished sharded build are not the corpus
        if rel.starts_with("manifest.part-") {
            continue;
        }
        code.push_str(&format!(
            "    ({rel:?}, include_bytes!({:?})),\n",
            path.display().to_string()
        ));
    }
    code.push_str("];\n");
    let out =
        PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("embedded_corpus.rs");
    fs::write(out, code).expect("OUT_DIR is writable");
}
