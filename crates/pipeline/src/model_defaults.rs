//! The generation settings a model folder recommends: an optional `studio.json` at the folder
//! root, e.g. `{"guidance_scale": 3.0, "num_inference_steps": 25}`.
//!
//! diffusers keeps no such file (`StableDiffusionPipeline.__call__` hard-codes guidance 7.5 and 50
//! steps), so a model trained to work best elsewhere — the classroom model wants guidance 3 — had
//! its recommendation only in prose. `studio.json` makes it data that `studio generate`, the
//! evaluation commands and the page read. Every key is optional; unknown keys are ignored (so the
//! file can grow); a key that is present must be valid, and the error names the file and the key.
//! A `null` value counts as absent, as in diffusers' configs.
//!
//! Core crate: the caller reads the file and passes its bytes.

use schedulers::SchedulerKind;
use thiserror::Error;

/// Guidance, steps and scheduler to use when the user does not choose them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelDefaults {
    /// Classifier-free guidance scale (finite, > 0).
    pub guidance_scale: f64,
    /// Denoising steps, 1..=1000 (the training schedule's length bounds DDIM's step count).
    pub num_inference_steps: usize,
    /// `None`: the folder's `scheduler/scheduler_config.json` decides, as in diffusers.
    pub scheduler: Option<SchedulerKind>,
}

impl Default for ModelDefaults {
    /// diffusers' `StableDiffusionPipeline.__call__` defaults: `guidance_scale=7.5`,
    /// `num_inference_steps=50`, the folder's own scheduler.
    fn default() -> Self {
        Self { guidance_scale: 7.5, num_inference_steps: 50, scheduler: None }
    }
}

/// A `studio.json` that cannot be used.
#[derive(Debug, Error)]
pub enum ModelDefaultsError {
    #[error("{file} is not valid JSON: {reason}")]
    Json { file: String, reason: String },
    #[error("{file} must hold a JSON object, found {found}")]
    NotAnObject { file: String, found: String },
    #[error("{file}: `{field}` {reason}")]
    Field { file: String, field: &'static str, reason: String },
}

/// What one `studio.json` sets; each field is `None` where the file leaves it out.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StudioJson {
    pub guidance_scale: Option<f64>,
    pub num_inference_steps: Option<usize>,
    pub scheduler: Option<SchedulerKind>,
}

impl StudioJson {
    /// The file name at the model folder's root.
    pub const FILE: &'static str = "studio.json";

    /// Parses and validates the bytes of a `studio.json`; `file` names it in errors.
    pub fn parse(file: &str, bytes: &[u8]) -> Result<Self, ModelDefaultsError> {
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| ModelDefaultsError::Json { file: file.to_owned(), reason: e.to_string() })?;
        let serde_json::Value::Object(map) = value else {
            return Err(ModelDefaultsError::NotAnObject { file: file.to_owned(), found: value.to_string() });
        };
        let field =
            |field: &'static str, reason: String| ModelDefaultsError::Field { file: file.to_owned(), field, reason };
        let present = |k: &str| map.get(k).filter(|v| !v.is_null());

        let guidance_scale = match present("guidance_scale") {
            None => None,
            Some(v) => {
                let g = v.as_f64().ok_or_else(|| field("guidance_scale", format!("must be a number, found {v}")))?;
                if !g.is_finite() || g <= 0.0 {
                    return Err(field("guidance_scale", format!("must be a finite number above 0, found {v}")));
                }
                Some(g)
            }
        };
        let num_inference_steps = match present("num_inference_steps") {
            None => None,
            Some(v) => {
                let s = v.as_u64().filter(|s| (1..=1000).contains(s));
                Some(s.ok_or_else(|| {
                    field("num_inference_steps", format!("must be a whole number from 1 to 1000, found {v}"))
                })? as usize)
            }
        };
        let scheduler = match present("scheduler") {
            None => None,
            Some(v) => {
                let names = SchedulerKind::ALL.map(SchedulerKind::name).join(", ");
                let s =
                    v.as_str().ok_or_else(|| field("scheduler", format!("must be a string ({names}), found {v}")))?;
                Some(s.parse().map_err(|_| {
                    field("scheduler", format!("`{s}` is not one of {names} (or their diffusers class names)"))
                })?)
            }
        };
        Ok(Self { guidance_scale, num_inference_steps, scheduler })
    }

    /// `base` with every value this file sets replaced.
    pub fn over(&self, base: ModelDefaults) -> ModelDefaults {
        ModelDefaults {
            guidance_scale: self.guidance_scale.unwrap_or(base.guidance_scale),
            num_inference_steps: self.num_inference_steps.unwrap_or(base.num_inference_steps),
            scheduler: self.scheduler.or(base.scheduler),
        }
    }
}

impl ModelDefaults {
    /// The defaults of a folder whose `studio.json` has these bytes (diffusers' where it is silent).
    pub fn from_studio_json(file: &str, bytes: &[u8]) -> Result<Self, ModelDefaultsError> {
        Ok(StudioJson::parse(file, bytes)?.over(Self::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<StudioJson, ModelDefaultsError> {
        StudioJson::parse("m/studio.json", s.as_bytes())
    }

    fn err(s: &str) -> String {
        parse(s).unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_diffusers_pipeline_defaults() {
        assert_eq!(
            ModelDefaults::default(),
            ModelDefaults { guidance_scale: 7.5, num_inference_steps: 50, scheduler: None }
        );
        assert_eq!(ModelDefaults::from_studio_json("f", b"{}").unwrap(), ModelDefaults::default());
    }

    #[test]
    fn set_keys_override_and_unknown_keys_are_ignored() {
        let d = ModelDefaults::from_studio_json(
            "f",
            br#"{"guidance_scale": 3.0, "num_inference_steps": 25, "comment": [1, 2]}"#,
        )
        .unwrap();
        assert_eq!(d, ModelDefaults { guidance_scale: 3.0, num_inference_steps: 25, scheduler: None });
        let s =
            parse(r#"{"scheduler": "EulerDiscreteScheduler", "guidance_scale": null, "num_inference_steps": 1000}"#)
                .unwrap();
        assert_eq!(
            s,
            StudioJson { guidance_scale: None, num_inference_steps: Some(1000), scheduler: Some(SchedulerKind::Euler) }
        );
        let base = ModelDefaults { guidance_scale: 4.0, num_inference_steps: 10, scheduler: Some(SchedulerKind::Ddim) };
        assert_eq!(
            s.over(base),
            ModelDefaults { guidance_scale: 4.0, num_inference_steps: 1000, scheduler: Some(SchedulerKind::Euler) }
        );
        assert_eq!(parse(r#"{"guidance_scale": 7}"#).unwrap().guidance_scale, Some(7.0));
    }

    #[test]
    fn bad_values_name_the_file_and_the_key() {
        assert_eq!(err(r#"{"guidance_scale": "3"}"#), "m/studio.json: `guidance_scale` must be a number, found \"3\"");
        assert_eq!(
            err(r#"{"guidance_scale": 0}"#),
            "m/studio.json: `guidance_scale` must be a finite number above 0, found 0"
        );
        assert_eq!(
            err(r#"{"guidance_scale": -1.5}"#),
            "m/studio.json: `guidance_scale` must be a finite number above 0, found -1.5"
        );
        // JSON has no NaN or ∞; a literal beyond f64 is refused by the parser.
        assert!(
            err(r#"{"guidance_scale": 1e999}"#).starts_with("m/studio.json is not valid JSON: number out of range")
        );
        for bad in ["0", "1001", "2.5", "-3", "\"25\""] {
            let e = err(&format!(r#"{{"num_inference_steps": {bad}}}"#));
            assert_eq!(
                e,
                format!("m/studio.json: `num_inference_steps` must be a whole number from 1 to 1000, found {bad}")
            );
        }
        assert!(
            err(r#"{"scheduler": "heun"}"#)
                .starts_with("m/studio.json: `scheduler` `heun` is not one of ddim, euler, euler-a, lcm, dpm, pndm")
        );
        assert!(err(r#"{"scheduler": 3}"#).starts_with("m/studio.json: `scheduler` must be a string"));
        assert_eq!(err("[1]"), "m/studio.json must hold a JSON object, found [1]");
        assert!(err("{\"guidance_scale\": 3,").starts_with("m/studio.json is not valid JSON: EOF"));
    }
}
