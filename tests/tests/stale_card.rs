//! A model card whose keys were made for another circuit version (an older zkinfer) is refused by
//! name before any proof is attempted, and the CLI says to re-run setup.

use models::{card::ModelCard, circuit::CIRCUIT_VERSION, Error};
use zkinfer_tests::{node_bin, root, zoo};

#[test]
fn a_card_from_another_circuit_version_is_refused_by_name() {
    let m = zoo("digits_mlp");
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(m.card_path.parent().unwrap()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    let card_path = dir.path().join(m.card_path.file_name().unwrap());
    let fresh = ModelCard::load(&card_path).unwrap();
    assert_eq!(fresh.circuit_version, CIRCUIT_VERSION);
    fresh.load_model(&card_path).unwrap();

    // A card written before the field existed: version 1 (before packed dot products).
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&card_path).unwrap()).unwrap();
    json.as_object_mut().unwrap().remove("circuit_version");
    std::fs::write(&card_path, json.to_string()).unwrap();
    let old = ModelCard::load(&card_path).unwrap();
    match old.load_model(&card_path) {
        Err(Error::StaleCircuit { card: 1, current }) => assert_eq!(current, CIRCUIT_VERSION),
        other => panic!("expected StaleCircuit, got {other:?}"),
    }

    let input = root().join("models/zoo/digits_mlp.input.json");
    let out = std::process::Command::new(node_bin())
        .args(["prove", "--insecure-dev-srs", "--out"])
        .arg(dir.path().join("proof.json"))
        .arg("--card")
        .arg(&card_path)
        .arg("--input")
        .arg(&input)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a stale card was proved");
    assert!(stderr.contains("circuit version 1") && stderr.contains("re-run setup"), "{stderr}");
    assert!(!dir.path().join("proof.json").exists(), "a proof file was written");
}
