//! The browser's [`Host`] of the generation loop (wasm32 only): `performance.now()`, a macrotask
//! between steps, the page's progress / preview callbacks, and the session's cancel flag (the
//! only session state it holds).

use crate::engine::{Host, Progress};
use crate::results::{PreviewOut, to_object};
use std::cell::Cell;
use std::rc::Rc;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// `obj[key]`, `undefined` when it is missing.
pub(crate) fn get(obj: &JsValue, key: &str) -> JsValue {
    js_sys::Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

pub(crate) fn now_ms() -> f64 {
    let perf = get(&js_sys::global(), "performance");
    let now = get(&perf, "now");
    match now.dyn_ref::<js_sys::Function>().and_then(|f| f.call0(&perf).ok()).and_then(|v| v.as_f64()) {
        Some(t) => t,
        None => js_sys::Date::now(),
    }
}

/// A macrotask (`setTimeout(0)`): lets the worker handle queued messages such as `cancel`.
async fn next_task() {
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        let set_timeout = get(&js_sys::global(), "setTimeout");
        if let Some(f) = set_timeout.dyn_ref::<js_sys::Function>() {
            let _ = f.call2(&JsValue::NULL, &resolve, &JsValue::from_f64(0.0));
        } else {
            let _ = resolve.call0(&JsValue::NULL);
        }
    });
    let _ = JsFuture::from(promise).await;
}

fn web_log(msg: &str) {
    let console = get(&js_sys::global(), "console");
    if let Some(f) = get(&console, "warn").dyn_ref::<js_sys::Function>() {
        let _ = f.call1(&console, &JsValue::from_str(msg));
    }
}

pub(crate) struct BrowserHost {
    /// Set by `Session.cancel()`; read after every yield.
    pub cancel: Rc<Cell<bool>>,
    pub on_progress: Option<js_sys::Function>,
    pub on_preview: Option<js_sys::Function>,
}

impl Host for BrowserHost {
    fn now_ms(&self) -> f64 {
        now_ms()
    }
    fn yield_now(&mut self) -> impl std::future::Future<Output = ()> {
        next_task()
    }
    fn progress(&mut self, p: &Progress) {
        if let Some(f) = &self.on_progress {
            // A throwing callback must not abort the run: the error is only logged.
            let called = to_object(p).map_err(JsValue::from).and_then(|o| f.call1(&JsValue::NULL, &o));
            if let Err(e) = called {
                web_log(&format!("progress callback failed: {e:?}"));
            }
        }
    }
    fn cancel_requested(&self) -> bool {
        self.cancel.get()
    }
    fn preview(&mut self, step: usize, width: usize, height: usize, rgba: &[u8]) {
        if let Some(f) = &self.on_preview {
            let called = PreviewOut { step, width, height }
                .to_js(rgba)
                .map_err(JsValue::from)
                .and_then(|o| f.call1(&JsValue::NULL, &o));
            if let Err(e) = called {
                web_log(&format!("preview callback failed: {e:?}"));
            }
        }
    }
}
