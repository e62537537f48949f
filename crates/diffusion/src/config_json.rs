//! Reading a `config.json` into its config struct with errors that name the key: serde's own
//! messages name a type and a position ("invalid type: string \"big\", expected f64 at line 23
//! column 25", or for `int | list` keys only "data did not match any variant of untagged enum").

use serde::de::DeserializeOwned;
use serde_json::Value;

/// `T` from `value`. On a type error, each top-level key is tried alone (every config struct
/// here is `#[serde(default)]`, so a lone key deserializes unless it is the culprit) and the
/// message names the first key that fails, with its value.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, String> {
    let whole = match T::deserialize(value.clone()) {
        Ok(t) => return Ok(t),
        Err(e) => e,
    };
    if let Some(object) = value.as_object() {
        for (key, v) in object {
            let lone = Value::Object([(key.clone(), v.clone())].into_iter().collect());
            if let Err(e) = T::deserialize(lone) {
                let mut shown = v.to_string();
                if shown.chars().count() > 40 {
                    shown = shown.chars().take(40).collect::<String>() + "…";
                }
                return Err(format!("`{key}` is {shown}: {}", plain(&e.to_string())));
            }
        }
    }
    Err(plain(&whole.to_string()))
}

/// serde's wording for `int | list` keys, said in the config's terms.
fn plain(message: &str) -> String {
    if message.contains("did not match any variant of untagged enum") {
        "expected a whole number ≥ 0 or a list of them (one per block)".into()
    } else {
        message.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Default, Debug)]
    #[serde(default)]
    struct C {
        #[allow(dead_code)]
        a: usize,
        #[allow(dead_code)]
        b: f64,
    }

    #[test]
    fn the_key_at_fault_is_named() {
        let e = from_value::<C>(serde_json::json!({"a": 3, "b": "big"})).unwrap_err();
        assert_eq!(e, "`b` is \"big\": invalid type: string \"big\", expected f64");
        let e = from_value::<C>(serde_json::json!({"a": -1})).unwrap_err();
        assert!(e.starts_with("`a` is -1: invalid value: integer `-1`, expected usize"), "{e}");
        assert!(from_value::<C>(serde_json::json!({"a": 1, "b": 2.5})).is_ok());
    }
}
