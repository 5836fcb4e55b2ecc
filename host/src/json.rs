//! JSON text of a `serde_json::Value`, written straight into its buffer: `Value`'s `Display`
//! (`to_string()`) passes every token through `fmt::Formatter`, about twice the instructions.

use serde_json::Value;

/// `value` as compact JSON bytes.
pub fn to_bytes(value: &Value) -> Vec<u8> {
    // A `Value`'s map keys are strings, so writing one into a `Vec` cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// `value` as compact JSON text.
pub fn to_text(value: &Value) -> String {
    String::from_utf8(to_bytes(value)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn matches_the_display_form() {
        let value = serde_json::json!({"a": [1, "two", null, {"b": "\u{e9}\n"}], "c": 1.5});
        assert_eq!(super::to_text(&value), value.to_string());
        assert_eq!(super::to_bytes(&value), value.to_string().into_bytes());
    }
}
