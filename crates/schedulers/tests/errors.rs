//! Bad configs and bad calls give typed errors with actionable messages, never panics.
#![allow(deprecated)]

use burn::tensor::{Device, Tensor};
use schedulers::{SchedulerConfig, SchedulerError, SchedulerKind, build};

const SD1: &str = include_str!("../../../tests/fixtures/tiny-sd1/scheduler/scheduler_config.json");

fn sd1() -> SchedulerConfig {
    SchedulerConfig::from_json(SD1).unwrap()
}

fn err_of(kind: SchedulerKind, cfg: &SchedulerConfig, steps: usize) -> SchedulerError {
    match build(kind, cfg, steps) {
        Ok(_) => panic!("{kind} with {steps} steps should fail"),
        Err(e) => e,
    }
}

#[test]
fn unknown_beta_schedule_is_named() {
    // Refused when the config is read (a model loads with its schedule checked)...
    let e = SchedulerConfig::from_json(&SD1.replace("scaled_linear", "sqrt_cubed")).unwrap_err();
    assert!(
        matches!(&e, SchedulerError::InvalidValue { key: "beta_schedule", value, .. } if value == "sqrt_cubed"),
        "{e:?}"
    );
    // ...and by every scheduler built from one made in code.
    let cfg = SchedulerConfig { beta_schedule: Some("sqrt_cubed".into()), ..sd1() };
    for kind in SchedulerKind::ALL {
        let e = err_of(kind, &cfg, 20);
        assert!(
            matches!(&e, SchedulerError::InvalidValue { key: "beta_schedule", value, .. } if value == "sqrt_cubed"),
            "{kind}: {e:?}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains("sqrt_cubed") && msg.contains("scaled_linear") && msg.contains("squaredcos_cap_v2"),
            "{msg}"
        );
    }
}

#[test]
fn bad_values_and_json_are_reported() {
    let e = SchedulerConfig::from_json("{\"num_train_timesteps\": \"many\"}").unwrap_err();
    assert!(matches!(e, SchedulerError::Config { .. }), "{e:?}");
    assert!(SchedulerConfig::from_json("not json").is_err());
    let cfg = SchedulerConfig::from_json(&SD1.replace("\"leading\"", "\"sideways\"")).unwrap();
    let e = err_of(SchedulerKind::Euler, &cfg, 10);
    assert!(e.to_string().contains("timestep_spacing") && e.to_string().contains("sideways"), "{e}");
    let e = SchedulerConfig::from_json(&SD1.replace("\"epsilon\"", "\"flow\"")).unwrap_err();
    assert!(matches!(e, SchedulerError::InvalidValue { key: "prediction_type", .. }), "{e:?}");
    let cfg = SchedulerConfig { prediction_type: Some("flow".into()), ..sd1() };
    let e = err_of(SchedulerKind::Ddim, &cfg, 10);
    assert!(matches!(e, SchedulerError::InvalidValue { key: "prediction_type", .. }), "{e:?}");
    // A schedule that cannot be built is refused when it is read, naming the key.
    for (key, value, says) in [
        ("num_train_timesteps", "0", "num_train_timesteps is 0"),
        ("num_train_timesteps", "4294967296", "num_train_timesteps is 4294967296"),
        ("beta_end", "-0.5", "beta_end"),
    ] {
        let mut json: serde_json::Value = serde_json::from_str(SD1).unwrap();
        json[key] = serde_json::from_str(value).unwrap();
        let e = SchedulerConfig::from_json(&json.to_string()).unwrap_err();
        assert!(e.to_string().contains(says), "{key} = {value}: {e}");
    }
    let cfg = SchedulerConfig { trained_betas: Some(vec![0.01; 10]), ..sd1() };
    let e = err_of(SchedulerKind::Ddim, &cfg, 5);
    assert!(e.to_string().contains("trained_betas has 10 values"), "{e}");
}

#[test]
fn step_counts_out_of_range() {
    let cfg = sd1();
    for kind in SchedulerKind::ALL {
        let e = err_of(kind, &cfg, 0);
        assert!(matches!(e, SchedulerError::Steps { steps: 0, .. }), "{kind}: {e:?}");
        let e = err_of(kind, &cfg, 1001);
        assert!(matches!(e, SchedulerError::Steps { steps: 1001, .. }), "{kind}: {e:?}");
        assert!(e.to_string().contains("1000"), "{e}");
    }
    // LCM draws from its 50-step distillation schedule.
    let e = err_of(SchedulerKind::Lcm, &cfg, 51);
    assert!(e.to_string().contains("original_inference_steps"), "{e}");
    // DDIM "leading" with steps_offset 1 would index ᾱ[1000] at 1000 steps.
    let e = err_of(SchedulerKind::Ddim, &cfg, 1000);
    assert!(e.to_string().contains("timestep 1000"), "{e}");
}

#[test]
fn kind_names_parse() {
    for kind in SchedulerKind::ALL {
        assert_eq!(kind.name().parse::<SchedulerKind>().unwrap(), kind);
        assert_eq!(kind.diffusers_class().parse::<SchedulerKind>().unwrap(), kind);
    }
    assert_eq!("Euler-A".parse::<SchedulerKind>().unwrap(), SchedulerKind::EulerAncestral);
    assert_eq!("pndmscheduler".parse::<SchedulerKind>().unwrap(), SchedulerKind::Pndm);
    let e = "heun".parse::<SchedulerKind>().unwrap_err();
    assert_eq!(e.to_string(), "unknown scheduler `heun`: choose one of ddim, euler, euler-a, lcm, dpm, pndm");
}

#[test]
fn unsupported_options_are_explained() {
    let sample = SchedulerConfig { prediction_type: Some("sample".into()), ..sd1() };
    let e = err_of(SchedulerKind::EulerAncestral, &sample, 10);
    assert!(matches!(e, SchedulerError::Unsupported { key: "prediction_type", .. }), "{e:?}");
    let third = SchedulerConfig { solver_order: Some(3), ..sd1() };
    let e = err_of(SchedulerKind::DpmSolverMultistep, &third, 10);
    assert!(e.to_string().contains("solver_order"), "{e}");
    let e = err_of(SchedulerKind::Pndm, &sample, 10);
    assert!(matches!(e, SchedulerError::Unsupported { key: "prediction_type", .. }), "{e:?}");
    let thresh = SchedulerConfig { thresholding: Some(true), ..sd1() };
    assert!(matches!(
        err_of(SchedulerKind::Ddim, &thresh, 10),
        SchedulerError::Unsupported { key: "thresholding", .. }
    ));
}

#[test]
fn bad_step_calls() {
    let device = Device::ndarray();
    let x = || Tensor::<4>::zeros([1, 4, 8, 8], &device);
    let cfg = sd1();

    let mut s = build(SchedulerKind::EulerAncestral, &cfg, 3).unwrap();
    let e = s.step(x(), 0, x(), None).unwrap_err();
    assert!(matches!(e, SchedulerError::MissingNoise { index: 0, .. }), "{e:?}");
    let e = s.step(x(), 3, x(), Some(x())).unwrap_err();
    assert_eq!(e, SchedulerError::StepIndex { index: 3, len: 3 });

    let mut s = build(SchedulerKind::Lcm, &cfg, 2).unwrap();
    assert!(matches!(s.step(x(), 0, x(), None), Err(SchedulerError::MissingNoise { .. })));
    // LCM's last step needs no noise.
    assert!(s.step(x(), 1, x(), None).is_ok());

    let mut s = build(SchedulerKind::Ddim, &cfg, 3).unwrap();
    let e = s.step(Tensor::<4>::zeros([1, 4, 8, 9], &device), 0, x(), None).unwrap_err();
    assert!(matches!(e, SchedulerError::Shape { what: "model_output", .. }), "{e:?}");

    let mut s = build(SchedulerKind::DpmSolverMultistep, &cfg, 5).unwrap();
    s.step(x(), 0, x(), None).unwrap();
    let e = s.step(x(), 2, x(), None).unwrap_err();
    assert!(matches!(e, SchedulerError::OutOfOrder { expected: 1, got: 2, .. }), "{e:?}");
}
