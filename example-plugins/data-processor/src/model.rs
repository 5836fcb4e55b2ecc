//! What the parsers share: records handed one at a time to a [`Sink`], the field names seen so
//! far, and the report of problems found on the way.
//!
//! Nothing holds the whole data set: held as one JSON value per cell, an 8 MiB CSV already
//! outgrows a plugin's default 64 MiB of memory. The input is parsed twice instead, once to
//! check it and learn its fields, once more to write the conversion.

use std::collections::HashSet;
use std::rc::Rc;
use waygate_plugin_sdk::prelude::*;
use waygate_plugin_sdk::serde_json;

/// A field name, shared by every record that has the field.
pub type Name = Rc<str>;

/// One record: its fields in input order. A `Vec` rather than a map so that field order
/// survives a conversion, which matters to anyone reading the CSV header it becomes.
pub type Record = Vec<(Name, Value)>;

/// Receives records as the parser completes them.
pub trait Sink {
    fn record(&mut self, record: Record);
}

/// Counts records, for the checking pass.
#[derive(Debug, Default)]
pub struct Count(pub usize);

impl Sink for Count {
    fn record(&mut self, _: Record) {
        self.0 += 1;
    }
}

/// A writer, whose output so far can be measured.
pub trait Output: Sink {
    fn written(&self) -> usize;
}

/// Passes records to a writer until its output outgrows `limit`, then drops the rest: the
/// parse still runs to its end, but memory stays bounded.
pub struct Capped<'w> {
    writer: &'w mut dyn Output,
    limit: usize,
}

impl<'w> Capped<'w> {
    pub fn new(writer: &'w mut dyn Output, limit: usize) -> Self {
        Self { writer, limit }
    }

    pub fn overflowed(&self) -> bool {
        self.writer.written() > self.limit
    }
}

impl Sink for Capped<'_> {
    fn record(&mut self, record: Record) {
        if !self.overflowed() {
            self.writer.record(record);
        }
    }
}

/// Every field name in order of first appearance, each stored once.
#[derive(Debug, Default)]
pub struct Fields {
    order: Vec<Name>,
    known: HashSet<Name>,
}

impl Fields {
    /// The shared copy of `name`, registering it if it is new.
    pub fn intern(&mut self, name: &str) -> Name {
        if let Some(known) = self.known.get(name) {
            return known.clone();
        }
        let name: Name = Rc::from(name);
        self.known.insert(name.clone());
        self.order.push(name.clone());
        name
    }

    pub fn contains(&self, name: &str) -> bool {
        self.known.contains(name)
    }

    pub fn names(&self) -> &[Name] {
        &self.order
    }
}

/// The state a parser works with: where names and problems go, whether to normalise
/// values, and where finished records go.
pub struct Context<'s> {
    pub fields: Fields,
    pub issues: Issues,
    pub transform: bool,
    sink: &'s mut dyn Sink,
}

impl<'s> Context<'s> {
    pub fn new(validate: bool, transform: bool, sink: &'s mut dyn Sink) -> Self {
        Self {
            fields: Fields::default(),
            issues: Issues::new(validate),
            transform,
            sink,
        }
    }

    /// A value read from the input, normalised when transforming.
    pub fn value(&self, value: Value) -> Value {
        if self.transform {
            normalize(value)
        } else {
            value
        }
    }

    /// A field name read from the input, trimmed when transforming.
    pub fn name<'n>(&self, name: &'n str) -> &'n str {
        if self.transform { name.trim() } else { name }
    }

    pub fn emit(&mut self, record: Record) {
        self.sink.record(record);
    }
}

/// Builds one record from named values, renaming a repeated name (`id`, `id_2`) so that no
/// value is lost; the set makes that check cheap however wide the record is.
#[derive(Debug, Default)]
pub struct RecordBuilder {
    record: Record,
    names: HashSet<Name>,
}

impl RecordBuilder {
    pub fn push(
        &mut self,
        cx: &mut Context<'_>,
        name: &str,
        value: Value,
        at: impl FnOnce(Issue) -> Issue,
    ) {
        let unique = unique_name(name, |candidate| self.names.contains(candidate));
        if unique != name {
            cx.issues.structure(at(Issue::new(format!(
                "duplicate field {name:?}, kept as {unique:?}"
            ))));
        }
        let name = cx.fields.intern(&unique);
        self.names.insert(name.clone());
        self.record.push((name, value));
    }

    pub fn finish(self) -> Record {
        self.record
    }
}

/// A problem found in the input, located as precisely as the format allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Issue {
    /// 1-based line of the input where the problem is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// 1-based column (in characters) where the problem is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// 1-based number of the record the problem is in (the header is not a record).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// Longest message kept, in characters: parser messages may quote the offending input,
/// which can be a whole 10 MiB string.
const MAX_MESSAGE_CHARS: usize = 300;

impl Issue {
    pub fn new(message: impl Into<String>) -> Self {
        let mut message = message.into();
        if let Some((cut, _)) = message.char_indices().nth(MAX_MESSAGE_CHARS) {
            message.truncate(cut);
            message.push('…');
        }
        Self {
            line: None,
            column: None,
            record: None,
            message,
        }
    }

    pub fn at(mut self, (line, column): (usize, usize)) -> Self {
        self.line = Some(line);
        self.column = Some(column);
        self
    }

    pub fn at_line(mut self, line: usize) -> Self {
        self.line = Some(line);
        self
    }

    pub fn in_record(mut self, record: usize) -> Self {
        self.record = Some(record);
        self
    }
}

/// A report that stays small however broken the input is: a 10 MiB file with a bad quote on
/// every line must not turn into a result larger than the data.
const MAX_ISSUES: usize = 100;

/// Collects problems. Syntax errors always make the input invalid; structural problems
/// (ragged rows, duplicate or empty names, non-flat values) are errors when validating and
/// warnings otherwise, because the parsers can always work around them.
#[derive(Debug)]
pub struct Issues {
    validate: bool,
    errors: Vec<Issue>,
    warnings: Vec<Issue>,
    errors_dropped: usize,
    warnings_dropped: usize,
}

impl Issues {
    pub fn new(validate: bool) -> Self {
        Self {
            validate,
            errors: Vec::new(),
            warnings: Vec::new(),
            errors_dropped: 0,
            warnings_dropped: 0,
        }
    }

    /// A problem that makes the input unusable.
    pub fn syntax(&mut self, issue: Issue) {
        push_capped(&mut self.errors, &mut self.errors_dropped, issue);
    }

    /// A problem the parser worked around.
    pub fn structure(&mut self, issue: Issue) {
        if self.validate {
            push_capped(&mut self.errors, &mut self.errors_dropped, issue);
        } else {
            push_capped(&mut self.warnings, &mut self.warnings_dropped, issue);
        }
    }

    /// A note about the output that does not concern the input's validity.
    pub fn warn(&mut self, issue: Issue) {
        push_capped(&mut self.warnings, &mut self.warnings_dropped, issue);
    }

    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }

    /// The collected errors and warnings, each list ending with a count of what was cut.
    pub fn finish(mut self) -> (Vec<Issue>, Vec<Issue>) {
        for (list, dropped, what) in [
            (&mut self.errors, self.errors_dropped, "errors"),
            (&mut self.warnings, self.warnings_dropped, "warnings"),
        ] {
            if dropped > 0 {
                list.push(Issue::new(format!("{dropped} more {what} not shown")));
            }
        }
        (self.errors, self.warnings)
    }
}

fn push_capped(list: &mut Vec<Issue>, dropped: &mut usize, issue: Issue) {
    if list.len() < MAX_ISSUES {
        list.push(issue);
    } else {
        *dropped += 1;
    }
}

/// Returns `name`, or `name_2`, `name_3`… when it is already taken, so that no data is lost
/// to a duplicate name.
pub fn unique_name(name: &str, taken: impl Fn(&str) -> bool) -> String {
    if !taken(name) {
        return name.to_owned();
    }
    (2..)
        .map(|n| format!("{name}_{n}"))
        .find(|candidate| !taken(candidate))
        .expect("an unbounded range always yields a free name")
}

/// `transform`: trims strings, turns empty ones into null, and turns strings that spell a
/// JSON number or boolean exactly into that value. "Exactly" means the value prints back as
/// the same text, so `007`, `1e3` or an integer too large for a float stay strings instead of
/// silently changing.
pub fn normalize(value: Value) -> Value {
    let Value::String(text) = value else {
        return value;
    };
    let text = text.trim();
    match text {
        "" => Value::Null,
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => match serde_json::from_str::<serde_json::Number>(text) {
            Ok(number) if number.to_string() == text => Value::Number(number),
            _ => Value::String(text.to_owned()),
        },
    }
}

/// How a value is written into a CSV cell or an XML element: strings as they are, null as
/// nothing, and arrays or objects as compact JSON so they survive a round trip.
pub fn cell_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        Value::Bool(_) | Value::Number(_) | Value::Array(_) | Value::Object(_) => value.to_string(),
    }
}

/// Turns byte offsets into 1-based lines and columns. Offsets must come in increasing order,
/// which keeps the whole scan linear in the input's size.
pub struct Lines<'a> {
    text: &'a str,
    offset: usize,
    line: usize,
    line_start: usize,
}

impl<'a> Lines<'a> {
    pub fn new(text: &'a str) -> Self {
        Self {
            text,
            offset: 0,
            line: 1,
            line_start: 0,
        }
    }

    pub fn locate(&mut self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        if offset > self.offset {
            let skipped = &self.text[self.offset..offset];
            if let Some(last) = skipped.rfind('\n') {
                self.line += skipped.bytes().filter(|&b| b == b'\n').count();
                self.line_start = self.offset + last + 1;
            }
            self.offset = offset;
        }
        let column = self.text[self.line_start..offset.max(self.line_start)]
            .chars()
            .count()
            + 1;
        (self.line, column)
    }
}

#[cfg(test)]
pub mod testing {
    use super::*;

    /// Keeps every record, for tests.
    #[derive(Default)]
    pub struct Collect(pub Vec<Record>);

    impl Sink for Collect {
        fn record(&mut self, record: Record) {
            self.0.push(record);
        }
    }

    /// What a parse produced: field names, records as `(name, value)` pairs, errors and
    /// warnings.
    pub struct Parsed {
        pub fields: Vec<String>,
        pub records: Vec<Vec<(String, Value)>>,
        pub errors: Vec<Issue>,
        pub warnings: Vec<Issue>,
    }

    pub fn run(
        parse: fn(&str, &mut Context<'_>),
        input: &str,
        validate: bool,
        transform: bool,
    ) -> Parsed {
        let mut sink = Collect::default();
        let mut cx = Context::new(validate, transform, &mut sink);
        parse(input, &mut cx);
        let fields = cx.fields.names().iter().map(|n| n.to_string()).collect();
        let (errors, warnings) = cx.issues.finish();
        let records = sink
            .0
            .into_iter()
            .map(|r| r.into_iter().map(|(n, v)| (n.to_string(), v)).collect())
            .collect();
        Parsed {
            fields,
            records,
            errors,
            warnings,
        }
    }

    pub fn strict(parse: fn(&str, &mut Context<'_>), input: &str) -> Parsed {
        run(parse, input, true, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_order_of_first_appearance_and_share_names() {
        let mut fields = Fields::default();
        let a = fields.intern("b");
        fields.intern("a");
        let again = fields.intern("b");
        assert!(Rc::ptr_eq(&a, &again));
        assert_eq!(fields.names(), [Rc::from("b"), Rc::from("a")]);
        assert!(fields.contains("a") && !fields.contains("c"));
    }

    #[test]
    fn records_rename_repeated_names() {
        let mut sink = Count::default();
        let mut cx = Context::new(true, false, &mut sink);
        let mut builder = RecordBuilder::default();
        for name in ["id", "id", "id"] {
            builder.push(&mut cx, name, json!(1), |i| i.in_record(1));
        }
        let names: Vec<_> = builder
            .finish()
            .into_iter()
            .map(|(n, _)| n.to_string())
            .collect();
        assert_eq!(names, ["id", "id_2", "id_3"]);
        let (errors, _) = cx.issues.finish();
        assert_eq!(errors.len(), 2);
        assert_eq!(
            errors[0].message,
            "duplicate field \"id\", kept as \"id_2\""
        );
    }

    #[test]
    fn structural_problems_are_errors_only_when_validating() {
        let mut strict = Issues::new(true);
        strict.structure(Issue::new("ragged"));
        assert!(!strict.is_valid());

        let mut lenient = Issues::new(false);
        lenient.structure(Issue::new("ragged"));
        assert!(lenient.is_valid());
        let (errors, warnings) = lenient.finish();
        assert!(errors.is_empty());
        assert_eq!(warnings[0].message, "ragged");
    }

    #[test]
    fn issue_lists_and_messages_are_capped() {
        let mut issues = Issues::new(true);
        for i in 0..MAX_ISSUES + 5 {
            issues.syntax(Issue::new(format!("problem {i}")));
        }
        let (errors, _) = issues.finish();
        assert_eq!(errors.len(), MAX_ISSUES + 1);
        assert_eq!(errors.last().unwrap().message, "5 more errors not shown");

        let long = Issue::new("é".repeat(1000));
        assert_eq!(long.message.chars().count(), MAX_MESSAGE_CHARS + 1);
    }

    #[test]
    fn normalize_infers_only_lossless_values() {
        assert_eq!(normalize(json!("  42 ")), json!(42));
        assert_eq!(normalize(json!("-1.5")), json!(-1.5));
        assert_eq!(normalize(json!("true")), json!(true));
        assert_eq!(normalize(json!("   ")), Value::Null);
        assert_eq!(normalize(json!(" x ")), json!("x"));
        assert_eq!(normalize(json!("007")), json!("007"));
        assert_eq!(normalize(json!("1e3")), json!("1e3"));
        assert_eq!(
            normalize(json!("123456789012345678901234567890")),
            json!("123456789012345678901234567890")
        );
        assert_eq!(normalize(json!(7)), json!(7));
    }

    #[test]
    fn cells_write_nested_values_as_json() {
        assert_eq!(cell_text(&Value::Null), "");
        assert_eq!(cell_text(&json!("a,b")), "a,b");
        assert_eq!(cell_text(&json!(2.5)), "2.5");
        assert_eq!(cell_text(&json!({"k": [1, 2]})), r#"{"k":[1,2]}"#);
    }

    #[test]
    fn offsets_map_to_lines_and_columns() {
        let text = "ab\ncdé\n\nf";
        let mut lines = Lines::new(text);
        assert_eq!(lines.locate(0), (1, 1));
        assert_eq!(lines.locate(4), (2, 2));
        // Inside a multi-byte character: that character's position.
        assert_eq!(lines.locate(6), (2, 3));
        assert_eq!(lines.locate(text.len()), (4, 2));
    }
}
