//! The session's variant entries (`studio_wasm::variants`, what the page's Session owns) on the
//! tiny SD-1 fixture: switching variants sets exactly the weights of the variant (bit for bit
//! against applying its entries on a fresh model) and copies no edit tensor to the device again;
//! adapters above the common prefix are the only ones re-attached; the run's steering combines
//! the variant's steering entries; entry requests parse as the page writes them; bad ids and
//! requests are refused with the model unchanged.

use crate::common::{block_on, load, weights};
use erasure::request::SteeringRequest;
use erasure::{Edit, EditStack};
use std::collections::BTreeMap;
use std::path::Path;
use studio_wasm::adapters;
use studio_wasm::erase::{EraseRequest, compute};
use studio_wasm::variants::{EntryRequest, Variants, file_slug};

const EDIT: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/browser/fixtures/tiny-sd1-mid-to_v-x3.safetensors");
const SPM_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/reference/spm");

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn fixture_edit() -> Edit {
    Edit::from_safetensors("x3.safetensors", std::fs::read(EDIT).unwrap()).unwrap()
}

fn uce(model: &pipeline::model::StableDiffusion) -> Edit {
    let req = EraseRequest::from_json(r#"{"method":"uce","concepts":["a red star"],"params":{"lamb":0.5}}"#).unwrap();
    block_on(compute(model, &req)).unwrap()
}

fn spm() -> adapters::Parsed {
    adapters::parse(
        "sd1_spm_a.safetensors",
        std::fs::read(Path::new(SPM_DIR).join("sd1_spm_a.safetensors")).unwrap(),
        "auto",
    )
    .unwrap()
}

#[test]
fn switching_variants_sets_exactly_the_variant_and_uploads_nothing() {
    let mut sd = load();
    let (x3, uce_edit) = (fixture_edit(), uce(&sd));
    let w0 = weights(&mut sd.unet);
    let mut v = Variants::new();
    v.add_edit(&mut sd.unet, "e1", "x3.safetensors", x3.clone(), None).unwrap();
    v.add_edit(&mut sd.unet, "e2", "uce.safetensors", uce_edit.clone(), None).unwrap();
    v.add_adapter(&mut sd.unet, "a1", spm(), 1.0).unwrap();
    assert_eq!(weights(&mut sd.unet), w0, "adding entries leaves them off");
    let uploaded = v.edits.uploaded_values();
    let values: usize = [&x3, &uce_edit].iter().flat_map(|e| &e.tensors).map(|t| t.data.len()).sum();
    assert_eq!(uploaded, values, "each edit's tensors are copied to the device once, when added");

    // What each variant must hold: its entries applied one by one on a fresh model.
    let reference = |list: &[&str]| {
        let mut fresh = load();
        let mut stack = EditStack::new();
        let mut a = adapters::SessionAdapters::new();
        for id in list {
            match *id {
                "e1" => drop(stack.apply(&mut fresh.unet, id, x3.clone(), "x3").unwrap()),
                "e2" => drop(stack.apply(&mut fresh.unet, id, uce_edit.clone(), "uce").unwrap()),
                _ => drop(a.attach(&mut fresh.unet, id, spm(), 1.0).unwrap()),
            }
        }
        weights(&mut fresh.unet)
    };
    let variants: [&[&str]; 7] = [&["e1"], &[], &["e1", "e2"], &["e2"], &["e1", "a1"], &["e1", "e2", "a1"], &["a1"]];
    for _ in 0..2 {
        for list in variants {
            v.set_variant(&mut sd.unet, &ids(list)).unwrap();
            assert_eq!(v.edits.active(), list.iter().filter(|id| id.starts_with('e')).copied().collect::<Vec<_>>());
            assert_eq!(weights(&mut sd.unet), reference(list), "variant {list:?}");
        }
    }
    assert_eq!(v.edits.uploaded_values(), uploaded, "switching variants copied edit tensors to the device again");
    v.set_variant(&mut sd.unet, &[]).unwrap();
    assert_eq!(weights(&mut sd.unet), w0, "the empty variant is the loaded model, bit for bit");

    // Removing an entry that is on takes it off the weights.
    v.set_variant(&mut sd.unet, &ids(&["e1", "a1"])).unwrap();
    assert!(v.remove(&mut sd.unet, "e1").unwrap());
    assert_eq!(weights(&mut sd.unet), reference(&["a1"]));
    assert!(!v.remove(&mut sd.unet, "e1").unwrap(), "already gone");
    assert!(v.remove(&mut sd.unet, "a1").unwrap());
    assert_eq!(weights(&mut sd.unet), w0);
}

#[test]
fn an_unknown_id_is_refused_and_nothing_changes() {
    let mut sd = load();
    let mut v = Variants::new();
    v.add_edit(&mut sd.unet, "e1", "x3.safetensors", fixture_edit(), None).unwrap();
    v.set_variant(&mut sd.unet, &ids(&["e1"])).unwrap();
    let before = weights(&mut sd.unet);
    let err = v.set_variant(&mut sd.unet, &ids(&["e9"])).unwrap_err().to_string();
    assert!(err.contains("`e9`") && err.contains("add it again"), "{err}");
    assert_eq!(weights(&mut sd.unet), before);
    assert_eq!(v.edits.active(), ["e1"]);
    let err = v.export("e9").unwrap_err().to_string();
    assert!(err.contains("no entry `e9`"), "{err}");
}

#[test]
fn steering_entries_combine_and_of_two_of_a_kind_the_last_wins() {
    let mut sd = load();
    let mut v = Variants::new();
    let sld = |p: &str| SteeringRequest { sld: Some(p.into()), ..Default::default() };
    let safree =
        SteeringRequest { safree: Some("skull;pirate flag".into()), safree_alpha: Some(0.05), ..Default::default() };
    let info = v.add_steering(&mut sd.unet, "s1", sld("weak")).unwrap().clone();
    assert_eq!(
        (info.kind, info.file.as_str(), info.concepts.as_slice()),
        ("sld", "SLD weak", &["the official unsafe-concept list".to_string()][..])
    );
    v.add_steering(&mut sd.unet, "s2", sld("max")).unwrap();
    let info = v.add_steering(&mut sd.unet, "s3", safree.clone()).unwrap().clone();
    assert_eq!(
        (info.kind, info.concepts.len(), &info.hyperparameters["alpha"]),
        ("safree", 2, &serde_json::json!(0.05))
    );
    assert!(!info.exportable);

    v.set_variant(&mut sd.unet, &ids(&["s1", "s3", "s2"])).unwrap();
    let run = v.steering_now().unwrap();
    assert_eq!(
        (run.sld.as_deref(), run.safree.as_deref(), run.safree_alpha),
        (Some("max"), Some("skull;pirate flag"), Some(0.05))
    );
    v.set_variant(&mut sd.unet, &ids(&["s2", "s1"])).unwrap();
    assert_eq!(v.steering_now().unwrap().sld.as_deref(), Some("weak"));
    assert_eq!(v.steering_now().unwrap().safree, None);
    v.set_variant(&mut sd.unet, &[]).unwrap();
    assert!(v.steering_now().is_none());

    // Bad settings are refused when added, with the reason.
    let err = v.add_steering(&mut sd.unet, "s4", sld("extreme")).unwrap_err().to_string();
    assert!(err.contains("extreme"), "{err}");
    let err = v.add_steering(&mut sd.unet, "s4", SteeringRequest::default()).unwrap_err().to_string();
    assert!(err.contains("SLD or SAFREE"), "{err}");
    assert!(v.info("s4").is_none());
}

#[test]
fn edits_export_as_their_file_and_steering_does_not() {
    let mut sd = load();
    let mut v = Variants::new();
    let e = fixture_edit();
    let info = v.add_edit(&mut sd.unet, "e1", "x3.safetensors", e.clone(), None).unwrap().clone();
    assert_eq!((info.kind, info.exportable, info.tensors.len()), ("edit", true, e.tensors.len()));
    let (file, bytes) = v.export("e1").unwrap();
    assert_eq!(file, "x3.safetensors");
    assert_eq!(bytes, e.to_safetensors());
    v.add_steering(&mut sd.unet, "s1", SteeringRequest { sld: Some("medium".into()), ..Default::default() }).unwrap();
    let err = v.export("s1").unwrap_err().to_string();
    assert!(err.contains("not a file"), "{err}");
    // An id taken again replaces the entry.
    v.add_steering(&mut sd.unet, "e1", SteeringRequest { sld: Some("weak".into()), ..Default::default() }).unwrap();
    assert!(v.edits.known().is_empty(), "the edit under the reused id is gone");
    assert_eq!(v.infos().len(), 2);
}

#[test]
fn entry_requests_parse_as_the_page_writes_them() {
    let erase = EntryRequest::from_json(
        r#"{"kind":"erase","method":"uce","concepts":["skull"],"guides":[],"preserve":[],"params":{"lamb":0.5}}"#,
    )
    .unwrap();
    assert!(matches!(erase, EntryRequest::Erase(r) if r.concepts == ["skull"]));
    let steer = EntryRequest::from_json(r#"{"kind":"steer","sld":"medium","sldConcept":"skull"}"#).unwrap();
    assert!(matches!(steer, EntryRequest::Steer(r) if r.sld_concept.as_deref() == Some("skull")));
    let fit = EntryRequest::from_json(
        r#"{"kind":"fit-eraser","method":"inlp","concepts":["a skull"],"others":["a star"],"iterations":3}"#,
    )
    .unwrap();
    assert!(matches!(fit, EntryRequest::FitEraser(r) if r.iterations == Some(3)));
    let rab = EntryRequest::from_json(r#"{"kind":"ring-a-bell","pairs":"a skull|a star","eta":3}"#).unwrap();
    assert!(matches!(rab, EntryRequest::RingABell(r) if r.eta == Some(3.0)));
    for (bad, says) in [
        (r#"{"kind":"train","concepts":[]}"#, "train"),
        (r#"{"method":"uce","concepts":["skull"]}"#, "kind"),
        (r#"{"kind":"steer","sld":"medium","colour":"red"}"#, "colour"),
        (r#"{"kind":"erase","method":"esd","concepts":["skull"]}"#, "esd"),
    ] {
        let err = EntryRequest::from_json(bad).unwrap_err().to_string();
        assert!(err.contains("bad entry request") && err.contains(says), "{bad}: {err}");
    }
}

#[test]
fn file_names_from_concepts() {
    assert_eq!(file_slug("Van Gogh; pirate flag!"), "van-gogh-pirate-flag");
    assert_eq!(file_slug("  ***  "), "concept");
    assert_eq!(file_slug(&"a".repeat(60)).len(), 40);
}

#[test]
fn erasers_and_probes_as_rows() {
    use studio_wasm::steering::SteererInfo;
    use studio_wasm::variants::EntryInfo;
    let steerer = |kind, rank| SteererInfo {
        id: "e3".into(),
        kind,
        file: "leace-a-skull.safetensors".into(),
        concepts: vec!["a skull".into(), "a big skull".into()],
        others: vec!["a star".into()],
        rank,
        d_text: 32,
        hyperparameters: BTreeMap::from([("svd_tol".into(), serde_json::json!(0.01))]),
    };
    let leace = EntryInfo::steerer(steerer("leace", 1));
    assert_eq!((leace.kind, leace.method.as_str(), leace.exportable), ("leace", "leace", true));
    assert_eq!(leace.tensors, ["proj_left", "proj_right", "bias"]);
    assert_eq!(leace.values, 2 * 32 + 32);
    let h = serde_json::to_value(&leace.hyperparameters).unwrap();
    assert_eq!(h, serde_json::json!({"svd_tol": 0.01, "rank": 1, "dText": 32, "others": ["a star"]}));
    let inlp = EntryInfo::steerer(steerer("inlp", 3));
    assert_eq!((inlp.tensors.len(), inlp.values), (2, 2 * 3 * 32));
    let probe = EntryInfo::steerer(steerer("ring-a-bell", 0));
    assert_eq!((probe.tensors.len(), probe.values, probe.exportable), (0, 0, false));
    // The page reads these names (web/protocol.ts EntryInfo).
    let json = serde_json::to_value(&leace).unwrap();
    for key in [
        "id",
        "kind",
        "file",
        "method",
        "concepts",
        "guides",
        "preserve",
        "hyperparameters",
        "tensors",
        "values",
        "baseModel",
        "warning",
        "exportable",
    ] {
        assert!(json.get(key).is_some(), "EntryInfo has no `{key}`");
    }
}
