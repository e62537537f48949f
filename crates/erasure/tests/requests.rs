//! The request types the CLI and the page share (`erasure::request`): the page's JSON names, the
//! defaults each method gets when an option is absent, and the messages of bad requests.

use erasure::leace::{EraserMethod, LinearEraser};
use erasure::request::{
    AdapterFileKind, EraseMethod, EraseRequest, EraserFitRequest, MethodConfig, RequestError, RingABellRequest,
    SteeringRequest, SteeringSources,
};
use erasure::ring_a_bell::RingABell;
use erasure::sld::DEFAULT_SAFETY_CONCEPT;

fn erase(json: &str) -> Result<EraseRequest, String> {
    EraseRequest::from_json(json).map_err(|e| e.to_string())
}

#[test]
fn erase_requests_take_each_methods_defaults() {
    let r = erase(r#"{"method":"rece","concepts":["a"],"params":{"epochs":2,"tokens":"legacy"}}"#).unwrap();
    assert_eq!((r.method, r.guides.len(), r.preserve.len()), (EraseMethod::Rece, 0, 0));
    let MethodConfig::Rece(c) = r.to_config().unwrap() else { panic!("not RECE") };
    assert_eq!((c.epochs, c.gamma, c.lamb, c.erase_scale, c.preserve_scale), (2, 0.1, 0.1, 1.0, 0.1));
    assert_eq!(c.uce.tokens, erasure::uce::TokenSelection::LegacyLastWord);
    let MethodConfig::Uce(c) = erase(r#"{"method":"uce","concepts":["a"]}"#).unwrap().to_config().unwrap() else {
        panic!("not UCE")
    };
    assert_eq!((c.lamb, c.erase_scale, c.preserve_scale), (0.5, 1.0, None));
    let MethodConfig::Speed(c, seed) =
        erase(r#"{"method":"speed","concepts":["a"],"params":{"filter":false,"seed":7}}"#)
            .unwrap()
            .to_config()
            .unwrap()
    else {
        panic!("not SPEED")
    };
    assert_eq!((c.retain_scale, c.threshold, c.aug_num, c.filter, c.lamb, seed), (1.0, 0.1, 10, false, 0.0, 7));
    let MethodConfig::Mace(c) =
        erase(r#"{"method":"mace","concepts":["a"],"params":{"concept_type":"style","lamb":0.3}}"#)
            .unwrap()
            .to_config()
            .unwrap()
    else {
        panic!("not MACE")
    };
    assert_eq!(
        (c.lamb, c.preserve_scale, c.augment, c.concept_type),
        (0.3, 1.0, false, erasure::mace_cfr::ConceptType::Style)
    );
    // Keys are edited by all but TIME and SPEED, which edit them with `with_to_k` only.
    assert!(!erase(r#"{"method":"time","concepts":["a"]}"#).unwrap().edits_keys());
    assert!(erase(r#"{"method":"time","concepts":["a"],"params":{"with_to_k":true}}"#).unwrap().edits_keys());
    assert!(erase(r#"{"method":"mace","concepts":["a"]}"#).unwrap().edits_keys());
}

#[test]
fn bad_erase_requests_say_what_to_change_without_json_positions() {
    let e = erase(r#"{"method":"uce","concepts":["x"],"params":{"lambda":1}}"#).unwrap_err();
    assert!(e.starts_with("unknown hyper-parameter `lambda`; known: lamb, erase_scale") && !e.contains("line"), "{e}");
    assert_eq!(
        erase(r#"{"method":"uce","concepts":["x"],"params":{"lamb":"big"}}"#).unwrap_err(),
        "hyper-parameter `lamb` must be a number (got \"big\")"
    );
    assert_eq!(
        erase(r#"{"method":"rece","concepts":["x"],"params":{"epochs":1.5}}"#).unwrap_err(),
        "hyper-parameter `epochs` must be a whole number (got 1.5)"
    );
    assert_eq!(
        erase(r#"{"method":"esd","concepts":["x"]}"#).unwrap_err(),
        "unknown method `esd`: use uce, time, rece, speed or mace"
    );
    assert_eq!(
        erase(r#"{"method":"uce","concepts":["x"],"params":{"tokens":"first"}}"#).unwrap_err(),
        "unknown tokens `first`: use last or legacy"
    );
    assert!(
        erase(r#"{"method":"uce","concepts":["x"],"extra":1}"#)
            .unwrap_err()
            .starts_with("erase request: unknown field `extra`")
    );
    // The CLI's flags reach the same options; a non-finite number is refused there too.
    let mut r = erase(r#"{"method":"uce","concepts":["x"]}"#).unwrap();
    r.options.lamb = Some(f64::INFINITY);
    assert_eq!(r.to_config().unwrap_err().to_string(), "hyper-parameter `lamb` must be a number (got inf)");
}

/// Names resolved to fixed answers, recording what was asked.
struct Named(Vec<String>);

impl SteeringSources for Named {
    fn eraser(&mut self, name: &str) -> Result<(LinearEraser, String), RequestError> {
        self.0.push(format!("eraser {name}"));
        Err(RequestError::Invalid(format!("no eraser `{name}`")))
    }
    fn ring_a_bell(&mut self, name: &str, eta: Option<f64>) -> Result<RingABell, RequestError> {
        self.0.push(format!("probe {name} {eta:?}"));
        Err(RequestError::Invalid(format!("no probe `{name}`")))
    }
}

#[test]
fn steering_requests_use_the_pages_names() {
    let r: SteeringRequest = serde_json::from_str(r#"{"sld":"max","sldConcept":"  ","safree":"skull; flag","safreeAlpha":0.02,"safreeAllSteps":true,"safreeArtist":false}"#).unwrap();
    let c = r.to_config(&mut Named(vec![])).unwrap().unwrap();
    assert_eq!(c.sld_concept, DEFAULT_SAFETY_CONCEPT, "a blank safety concept is the official list");
    let s = c.safree.unwrap();
    assert_eq!((s.alpha, s.self_validating, s.artist), (0.02, false, false));
    assert!(
        serde_json::from_str::<SteeringRequest>(r#"{"leace":"e1"}"#).is_err(),
        "unknown fields are a protocol mismatch"
    );
    assert!(
        serde_json::from_str::<SteeringRequest>(r#"{"ringABellEta":3}"#).is_err(),
        "η is the probe's, not the run's"
    );
    // Names go to the front end's sources, with the CLI's η for its pairs.
    let mut named = Named(vec![]);
    let r = SteeringRequest { ring_a_bell: Some("a|b".into()), ring_a_bell_eta: Some(0.9), ..Default::default() };
    assert_eq!(r.to_config(&mut named).unwrap_err().to_string(), "no probe `a|b`");
    let r: SteeringRequest = serde_json::from_str(r#"{"eraser":"e1"}"#).unwrap();
    assert_eq!(r.to_config(&mut named).unwrap_err().to_string(), "no eraser `e1`");
    assert_eq!(named.0, ["probe a|b Some(0.9)", "eraser e1"]);
    assert!(SteeringRequest::default().to_config(&mut named).unwrap().is_none());
    let e = SteeringRequest { sld_concept: Some("x".into()), ..Default::default() }
        .to_config(&mut named)
        .unwrap_err()
        .to_string();
    assert!(e.contains("--sld-concept needs --sld"), "{e}");
}

#[test]
fn fit_requests_check_their_settings() {
    let r =
        EraserFitRequest::from_json(r#"{"method":"inlp","concepts":[" a skull ",""],"others":["a star"]}"#).unwrap();
    let fit = r.to_config().unwrap();
    assert_eq!(
        (fit.method, fit.concepts.as_slice(), fit.inlp.iterations, fit.inlp.min_accuracy),
        (EraserMethod::Inlp, &["a skull".to_owned()][..], 10, 0.55)
    );
    let e = EraserFitRequest::from_json(r#"{"concepts":["a"],"others":["b"],"minAccuracy":0.6}"#)
        .unwrap()
        .to_config()
        .unwrap_err()
        .to_string();
    assert!(e.contains("INLP's settings"), "{e}");
    let fit = RingABellRequest::from_json(r#"{"pairs":"a skull|a star; a|b"}"#).unwrap().to_config().unwrap();
    assert_eq!((fit.pairs.len(), fit.eta), (2, erasure::ring_a_bell::DEFAULT_ETA));
    let e = RingABellRequest { pairs: "a|b".into(), eta: Some(f64::NAN) }.to_config().unwrap_err().to_string();
    assert!(e.contains("finite"), "{e}");
    assert_eq!("auto".parse::<AdapterFileKind>().unwrap(), AdapterFileKind::Auto);
    assert_eq!(
        "edit".parse::<AdapterFileKind>().unwrap_err().to_string(),
        "unknown adapter kind `edit`: use spm, lora or auto"
    );
}
