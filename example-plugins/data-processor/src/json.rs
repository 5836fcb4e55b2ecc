//! JSON: an array of flat objects, one record each, or a single object as one record.
//!
//! The document is read with serde visitors that hand each object to the sink as soon as it
//! is complete, keeping its keys in input order (a `serde_json::Value` map would sort them,
//! and key order is the column order of the CSV a record may become).

use crate::model::{Context, Issue, Output, Record, RecordBuilder, Sink};
use serde::de::value::SeqAccessDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use std::fmt;
use waygate_plugin_sdk::prelude::*;
use waygate_plugin_sdk::serde_json;

/// Parses JSON text, handing each record to the context's sink.
pub fn parse(input: &str, cx: &mut Context<'_>) {
    let mut deserializer = serde_json::Deserializer::from_str(input);
    let parsed = Document { cx: &mut *cx }
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end());
    if let Err(error) = parsed {
        cx.issues.syntax(syntax_issue(&error));
    }
}

/// serde_json's message without the position it appends, which goes into the issue's own
/// fields instead.
fn syntax_issue(error: &serde_json::Error) -> Issue {
    let message = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    let issue = Issue::new(message.strip_suffix(&suffix).unwrap_or(&message));
    if error.line() == 0 {
        issue
    } else {
        issue.at((error.line(), error.column()))
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The top-level value: an array of records or a single one. Anything else falls to the
/// visitor's defaults, whose "invalid type" error names what was found and where.
struct Document<'c, 's> {
    cx: &'c mut Context<'s>,
}

impl<'de> DeserializeSeed<'de> for Document<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Document<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of objects or one object")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut number = 0;
        loop {
            number += 1;
            let element = Element {
                cx: &mut *self.cx,
                number,
            };
            if seq.next_element_seed(element)?.is_none() {
                return Ok(());
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        Element {
            cx: self.cx,
            number: 1,
        }
        .visit_map(map)
    }
}

/// One record: an object, or, in an array, any other value, which is reported and kept
/// under the name `value` so that a lenient conversion loses nothing.
struct Element<'c, 's> {
    cx: &'c mut Context<'s>,
    number: usize,
}

impl Element<'_, '_> {
    fn not_an_object<E>(self, value: Value) -> Result<(), E> {
        let issue = Issue::new(format!("record is {}, not an object", kind(&value)));
        self.cx.issues.structure(issue.in_record(self.number));
        let mut record = RecordBuilder::default();
        record.push(self.cx, "value", value, |issue| issue);
        self.cx.emit(record.finish());
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Element<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Element<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let number = self.number;
        let mut record = RecordBuilder::default();
        while let Some(key) = map.next_key::<String>()? {
            let value = self.cx.value(map.next_value::<Value>()?);
            let name = self.cx.name(&key);
            record.push(self.cx, name, value, |issue| issue.in_record(number));
        }
        self.cx.emit(record.finish());
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        let value = Value::deserialize(SeqAccessDeserializer::new(seq))?;
        self.not_an_object(value)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.not_an_object(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.not_an_object(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.not_an_object(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.not_an_object(Value::from(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.not_an_object(Value::String(v.to_owned()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.not_an_object(Value::Null)
    }
}

/// Writes records as a pretty-printed JSON array of objects, keys in record order.
pub struct Writer {
    out: String,
    any: bool,
}

impl Writer {
    pub fn new() -> Self {
        Self {
            out: String::from("["),
            any: false,
        }
    }

    pub fn finish(mut self) -> String {
        self.out.push_str(if self.any { "\n]" } else { "]" });
        self.out
    }
}

impl Output for Writer {
    fn written(&self) -> usize {
        self.out.len()
    }
}

impl Sink for Writer {
    fn record(&mut self, record: Record) {
        let text = serde_json::to_string_pretty(&Fields(&record))
            .expect("string keys and JSON values always serialize");
        self.out.push_str(if self.any { ",\n" } else { "\n" });
        self.any = true;
        // Pretty JSON escapes every line break inside strings, so each line of the text is
        // layout and can be indented one level for its place in the array.
        for (index, line) in text.lines().enumerate() {
            if index > 0 {
                self.out.push('\n');
            }
            self.out.push_str("  ");
            self.out.push_str(line);
        }
    }
}

struct Fields<'a>(&'a Record);

impl Serialize for Fields<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(&**name, value)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::{run, strict};

    #[test]
    fn keeps_key_order_and_collects_fields() {
        let p = strict(parse, r#"[{"z": 1, "a": "x"}, {"m": null, "z": 2}]"#);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(p.fields, ["z", "a", "m"]);
        assert_eq!(p.records[0][0], ("z".into(), json!(1)));
    }

    #[test]
    fn a_single_object_is_one_record() {
        let p = strict(parse, r#"{"id": 1, "tags": ["a"]}"#);
        assert!(p.errors.is_empty());
        assert_eq!(p.records.len(), 1);
        assert_eq!(p.records[0][1].1, json!(["a"]));
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let p = strict(parse, "[\n  {\"a\": 1,}\n]");
        assert_eq!(p.errors.len(), 1);
        assert_eq!((p.errors[0].line, p.errors[0].column), (Some(2), Some(11)));
        assert_eq!(p.errors[0].message, "trailing comma");
    }

    #[test]
    fn records_before_a_syntax_error_are_counted() {
        let p = strict(parse, r#"[{"a": 1}, {"a": 2}, {"a": }]"#);
        assert_eq!(p.records.len(), 2);
        assert_eq!(p.errors.len(), 1);
    }

    #[test]
    fn trailing_garbage_is_an_error() {
        let p = strict(parse, "[] x");
        assert_eq!(p.errors[0].message, "trailing characters");
    }

    #[test]
    fn non_objects_are_reported_and_kept_as_value() {
        let p = strict(parse, r#"[{"a": 1}, 5, [1, {"b": 2}]]"#);
        assert_eq!(p.errors.len(), 2);
        assert_eq!(p.errors[0].record, Some(2));
        assert_eq!(p.errors[0].message, "record is a number, not an object");
        assert_eq!(p.records[2], [("value".into(), json!([1, {"b": 2}]))]);
        let lenient = run(parse, "[5]", false, false);
        assert!(lenient.errors.is_empty());
        assert_eq!(
            lenient.warnings[0].message,
            "record is a number, not an object"
        );
    }

    #[test]
    fn a_top_level_scalar_is_not_data() {
        let p = strict(parse, "\"just text\"");
        assert_eq!(
            p.errors[0].message,
            "invalid type: string \"just text\", expected an array of objects or one object"
        );
    }

    #[test]
    fn duplicate_keys_are_renamed_not_dropped() {
        let p = strict(parse, r#"[{"a": 1, "a": 2}]"#);
        assert_eq!(p.errors.len(), 1);
        assert_eq!(
            p.records[0],
            [("a".into(), json!(1)), ("a_2".into(), json!(2))]
        );
    }

    #[test]
    fn transform_trims_keys_and_normalizes_values() {
        let p = run(parse, r#"[{" n ": " 5 ", "s": ""}]"#, true, true);
        assert_eq!(
            p.records[0],
            [("n".into(), json!(5)), ("s".into(), Value::Null)]
        );
    }

    #[test]
    fn writes_records_in_key_order() {
        let mut sink = Writer::new();
        let mut cx = Context::new(true, false, &mut sink);
        parse(r#"[{"b": 1, "a": {"y": "l\nm", "x": 2}}, {}]"#, &mut cx);
        assert_eq!(
            sink.finish(),
            "[\n  {\n    \"b\": 1,\n    \"a\": {\n      \"x\": 2,\n      \"y\": \"l\\nm\"\n    }\n  },\n  {}\n]"
        );
        assert_eq!(Writer::new().finish(), "[]");
    }
}
