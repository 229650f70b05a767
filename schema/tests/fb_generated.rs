//! The committed generated code must match `asobi.fbs`. The header of the generated file records
//! the schema's SHA-256, so this check needs no flatc; when a flatc 25.x is on the PATH the code
//! is also regenerated and compared byte for byte.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

fn fbs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fbs")
}

fn generated() -> String {
    std::fs::read_to_string(fbs_dir().join("src/asobi_generated.rs")).expect("generated code")
}

#[test]
fn generated_code_was_made_from_the_current_schema() {
    let schema = std::fs::read(fbs_dir().join("asobi.fbs")).expect("schema");
    let hash: String = Sha256::digest(&schema)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let code = generated();
    let recorded = code
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("// asobi.fbs sha256: "))
        .expect("generated file starts with the schema hash");
    assert_eq!(
        recorded, hash,
        "schema/fbs/asobi.fbs changed since the Rust code was generated: run schema/fbs/generate.sh"
    );
}

#[test]
fn flatc_output_matches_the_committed_code_when_flatc_is_available() {
    let version = match Command::new("flatc").arg("--version").output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        // No flatc (CI machines often lack it): the hash check above still guards staleness.
        _ => return,
    };
    if !version.starts_with("flatc version 25.") {
        return;
    }
    let out_dir = std::env::temp_dir().join(format!("asobi-fbs-check-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).expect("temp dir");
    let status = Command::new("flatc")
        .arg("--rust")
        .arg("-o")
        .arg(&out_dir)
        .arg(fbs_dir().join("asobi.fbs"))
        .status()
        .expect("run flatc");
    assert!(status.success());
    let fresh = std::fs::read_to_string(out_dir.join("asobi_generated.rs")).expect("flatc output");
    let _ = std::fs::remove_dir_all(&out_dir);
    let committed = generated();
    // The committed file is flatc's output behind two header lines.
    let body: String = committed
        .split_inclusive('\n')
        .skip(2)
        .collect::<Vec<_>>()
        .concat();
    assert!(
        body == fresh,
        "committed code differs from {version} output: run schema/fbs/generate.sh"
    );
}
