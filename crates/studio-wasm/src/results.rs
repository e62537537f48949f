//! What the Session hands back to JavaScript (wasm32 only), made one way: serde. Results the
//! worker `JSON.parse`s are JSON strings ([`to_json`]); results it reads as objects are the same
//! JSON parsed into a JS object ([`to_object`]), with the pixels (which JSON cannot carry) set on
//! it as a `Uint8ClampedArray`.

use crate::engine::Timing;
use crate::error::js_err;
use crate::variants::EntryInfo;
use serde::{Serialize, Serializer};
use wasm_bindgen::{JsError, JsValue};

/// `value` as JSON text.
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String, JsError> {
    serde_json::to_string(value).map_err(js_err)
}

/// `value` as a JS object (its JSON, parsed).
pub(crate) fn to_object<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, JsError> {
    js_sys::JSON::parse(&to_json(value)?).map_err(|e| JsError::new(&format!("could not hand a result over: {e:?}")))
}

/// `object.rgba = Uint8ClampedArray(rgba)`.
fn with_rgba(object: JsValue, rgba: &[u8]) -> JsValue {
    let _ = js_sys::Reflect::set(&object, &JsValue::from_str("rgba"), &js_sys::Uint8ClampedArray::from(rgba).into());
    object
}

/// `on_preview`'s argument: `{step, width, height, rgba}`.
#[derive(Serialize)]
pub(crate) struct PreviewOut {
    pub step: usize,
    pub width: usize,
    pub height: usize,
}

impl PreviewOut {
    pub fn to_js(&self, rgba: &[u8]) -> Result<JsValue, JsError> {
        Ok(with_rgba(to_object(self)?, rgba))
    }
}

/// Id → value, in the order given (a JS object keeps string keys in insertion order).
pub(crate) struct InOrder<'a>(pub &'a [(String, f64)]);

impl Serialize for InOrder<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// `generate`'s result of a finished run: `{status: 'done', width, height, rgba,
/// promptTruncated, steering, permeabilities, timing}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Done<'a> {
    pub status: &'static str,
    pub width: usize,
    pub height: usize,
    pub prompt_truncated: bool,
    pub steering: Option<&'a str>,
    /// Each SPM's Facilitated Transport permeability for this prompt (1 with FT off).
    pub permeabilities: InOrder<'a>,
    pub timing: &'a Timing,
    /// With `attention: true`: the heat maps' description; their values are set on it as
    /// `attention.maps` (`Float32Array` `[tokens, height, width]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attention: Option<AttentionOut<'a>>,
    /// With `timeline: true`: how many x̂₀ frames (one a step); their pixels are set on the
    /// object as `timeline` (`Uint8ClampedArray`, the frames' RGBA one after another).
    pub timeline_frames: usize,
    pub timeline_ms: f64,
    /// With SLD steering: its guidance terms at every step.
    pub sld_terms: &'a [erasure::sld::SldStepTerms],
}

/// `Done.attention`: `{tokens, words, height, width, layers, heads, steps, scores, ms}`.
#[derive(Serialize)]
pub(crate) struct AttentionOut<'a> {
    #[serde(flatten)]
    pub maps: &'a pipeline::daam::AttentionMaps,
    /// Each word's IoU with the image's object mask.
    #[serde(rename = "scores")]
    pub words: &'a [pipeline::daam::WordScore],
    /// Aggregating and reading the maps back.
    pub ms: f64,
}

impl Done<'_> {
    pub fn to_js(&self, rgba: &[u8], maps: Option<&[f32]>, timeline: &[Vec<u8>]) -> Result<JsValue, JsError> {
        let object = with_rgba(to_object(self)?, rgba);
        if !timeline.is_empty() {
            let all: Vec<u8> = timeline.concat();
            let _ = js_sys::Reflect::set(
                &object,
                &JsValue::from_str("timeline"),
                &js_sys::Uint8ClampedArray::from(all.as_slice()).into(),
            );
        }
        if let Some(maps) = maps
            && let Ok(att) = js_sys::Reflect::get(&object, &JsValue::from_str("attention"))
        {
            let _ = js_sys::Reflect::set(&att, &JsValue::from_str("maps"), &js_sys::Float32Array::from(maps).into());
        }
        Ok(object)
    }
}

/// `generate`'s result of a cancelled run: `{status: 'cancelled', step, total}`.
#[derive(Serialize)]
pub(crate) struct Cancelled {
    pub status: &'static str,
    pub step: usize,
    pub total: usize,
}

/// `addEntry`'s and `computeEntry`'s result: `{entry, ms}`.
#[derive(Serialize)]
pub(crate) struct Added<'a> {
    pub entry: &'a EntryInfo,
    pub ms: f64,
}

/// `exportEntry`'s result: `{file, data}` (`data`: a `Blob` or a `Uint8Array`).
#[derive(Serialize)]
pub(crate) struct Exported<'a> {
    pub file: &'a str,
}

impl Exported<'_> {
    pub fn to_js(&self, data: JsValue) -> Result<JsValue, JsError> {
        let object = to_object(self)?;
        let _ = js_sys::Reflect::set(&object, &JsValue::from_str("data"), &data);
        Ok(object)
    }
}
