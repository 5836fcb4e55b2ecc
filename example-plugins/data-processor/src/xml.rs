//! XML: a root element (conventionally `<records>`) whose child elements are records
//! (conventionally `<record>`), each holding one element per field:
//! `<records><record><name>Ada</name><age>36</age></record></records>`.
//! A record's attributes are fields too.
//!
//! Read as a stream of events (quick-xml) rather than a tree, so memory does not grow with
//! the document. Document type declarations are refused: entity definitions are how XML
//! bombs work, and tabular data never needs them.

use crate::model::{Context, Fields, Issue, Lines, Output, Record, RecordBuilder, Sink, cell_text};
use quick_xml::XmlVersion;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;
use std::collections::HashMap;
use waygate_plugin_sdk::prelude::*;

/// Parses XML text, handing each record to the context's sink.
pub fn parse(input: &str, cx: &mut Context<'_>) {
    let mut reader = Reader::from_str(input);
    reader.config_mut().enable_all_checks(true);
    let mut state = State {
        lines: Lines::new(input),
        depth: 0,
        seen_root: false,
        number: 0,
        record: None,
        loose: String::new(),
        loose_line: 0,
        field: None,
        stray_reported: false,
    };
    loop {
        let start = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let event = match reader.read_event() {
            Ok(event) => event,
            Err(error) => {
                let at = usize::try_from(reader.error_position()).unwrap_or(usize::MAX);
                cx.issues
                    .syntax(Issue::new(error.to_string()).at(state.lines.locate(at)));
                return;
            }
        };
        // Where the event's first visible character is: a text event starts right after
        // the previous tag, but a reader looks for its words.
        let end = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let raw = input.get(start..end).unwrap_or_default();
        let visible = start + (raw.len() - raw.trim_start().len());
        let result = match event {
            Event::Start(tag) => state.open(cx, &tag, visible),
            Event::Empty(tag) => state.open(cx, &tag, visible).and_then(|()| state.close(cx)),
            Event::End(_) => state.close(cx),
            Event::Text(text) => state.text(cx, &text.xml10_content(), visible),
            Event::CData(text) => state.text(cx, &text.xml10_content(), visible),
            Event::GeneralRef(reference) => match reference.resolve_char_ref() {
                Ok(Some(c)) => state.text(cx, c.encode_utf8(&mut [0; 4]), visible),
                Ok(None) => match resolve_predefined_entity(&reference) {
                    Some(text) => state.text(cx, text, visible),
                    None => Err(format!("unknown entity &{};", &*reference)),
                },
                Err(error) => Err(error.to_string()),
            },
            Event::DocType(_) => {
                Err("document type declarations (DTDs) are not supported".to_owned())
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => Ok(()),
            Event::Eof => {
                if state.depth > 0 {
                    Err("the document ends inside an element".to_owned())
                } else if !state.seen_root {
                    Err("the document has no root element".to_owned())
                } else {
                    return;
                }
            }
        };
        if let Err(message) = result {
            cx.issues
                .syntax(Issue::new(message).at(state.lines.locate(visible)));
            return;
        }
    }
}

/// A field element being read.
struct Field {
    name: String,
    text: String,
    line: usize,
    nested: bool,
}

/// Where the reader is: depth 1 is inside the root, 2 inside a record, 3 and more inside a
/// field.
struct State<'a> {
    lines: Lines<'a>,
    depth: usize,
    seen_root: bool,
    number: usize,
    record: Option<RecordBuilder>,
    /// Text directly inside the current record, and the line it starts on (found when it
    /// is read: `Lines` only moves forward).
    loose: String,
    loose_line: usize,
    field: Option<Field>,
    /// Whether text between records was reported since the last tag; a run of text is
    /// split into several events around references, and one report is enough.
    stray_reported: bool,
}

impl State<'_> {
    /// Handles a start tag; an error message means the document is not well-formed.
    fn open(
        &mut self,
        cx: &mut Context<'_>,
        tag: &BytesStart<'_>,
        at: usize,
    ) -> Result<(), String> {
        if self.depth != 1 {
            // Records read their attributes as fields; elsewhere they are only checked.
            for attribute in tag.attributes() {
                attribute.map_err(|e| e.to_string())?;
            }
        }
        match self.depth {
            0 if self.seen_root => return Err("more than one root element".to_owned()),
            0 => self.seen_root = true,
            1 => {
                self.number += 1;
                let number = self.number;
                let line = self.lines.locate(at).0;
                let mut record = RecordBuilder::default();
                for attribute in tag.attributes() {
                    let attribute = attribute.map_err(|e| e.to_string())?;
                    let value = attribute
                        .normalized_value(XmlVersion::Implicit1_0)
                        .map_err(|e| e.to_string())?;
                    let value = cx.value(Value::String(value.into_owned()));
                    let name = cx.name(attribute.key.local_name().into_inner());
                    record.push(cx, name, value, |issue| {
                        issue.at_line(line).in_record(number)
                    });
                }
                self.record = Some(record);
                self.loose.clear();
            }
            2 => {
                self.field = Some(Field {
                    name: cx.name(tag.local_name().into_inner()).to_owned(),
                    text: String::new(),
                    line: self.lines.locate(at).0,
                    nested: false,
                });
            }
            _ => {
                if let Some(field) = self.field.as_mut().filter(|f| !f.nested) {
                    field.nested = true;
                    cx.issues.structure(
                        Issue::new(format!(
                            "field {:?} has child elements; only its text is kept",
                            field.name
                        ))
                        .at_line(self.lines.locate(at).0)
                        .in_record(self.number),
                    );
                }
            }
        }
        self.depth += 1;
        self.stray_reported = false;
        Ok(())
    }

    /// Handles an end tag (quick-xml has already checked that it matches).
    fn close(&mut self, cx: &mut Context<'_>) -> Result<(), String> {
        self.depth = self.depth.saturating_sub(1);
        self.stray_reported = false;
        let number = self.number;
        match self.depth {
            2 => {
                if let (Some(field), Some(record)) = (self.field.take(), self.record.as_mut()) {
                    let value = cx.value(Value::String(field.text));
                    record.push(cx, &field.name, value, |issue| {
                        issue.at_line(field.line).in_record(number)
                    });
                }
            }
            1 => {
                if let Some(mut record) = self.record.take() {
                    let loose = self.loose.trim();
                    if !loose.is_empty() {
                        let line = self.loose_line;
                        cx.issues.structure(
                            Issue::new("text directly inside a record, kept as field \"value\"")
                                .at_line(line)
                                .in_record(number),
                        );
                        let value = cx.value(Value::String(loose.to_owned()));
                        record.push(cx, "value", value, |issue| {
                            issue.at_line(line).in_record(number)
                        });
                    }
                    cx.emit(record.finish());
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Handles text, CDATA or a resolved reference.
    fn text(&mut self, cx: &mut Context<'_>, text: &str, at: usize) -> Result<(), String> {
        let blank = text.trim().is_empty();
        match self.depth {
            0 if !blank => return Err("text outside the root element".to_owned()),
            1 if !blank && !self.stray_reported => {
                self.stray_reported = true;
                let line = self.lines.locate(at).0;
                cx.issues
                    .structure(Issue::new("text outside any record").at_line(line));
            }
            2 => {
                if self.loose.trim().is_empty() && !blank {
                    self.loose_line = self.lines.locate(at).0;
                }
                self.loose.push_str(text);
            }
            3.. => {
                if let Some(field) = self.field.as_mut() {
                    field.text.push_str(text);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Writes records as `<records><record>…</record></records>`, one element per field
/// present in a record; names that are not valid XML names are rewritten and reported.
pub struct Writer {
    out: String,
    elements: HashMap<String, String>,
    replaced: usize,
}

impl Writer {
    /// A writer for records whose field names are among `fields`; a renamed field is
    /// reported in `renamed` once.
    pub fn new(fields: &Fields, mut renamed: impl FnMut(Issue)) -> Self {
        let mut elements = HashMap::new();
        for name in fields.names() {
            let element = element_name(name);
            if *element != **name {
                renamed(Issue::new(format!(
                    "field {name:?} is not a valid XML name, written as <{element}>"
                )));
            }
            elements.insert(name.to_string(), element);
        }
        Self {
            out: String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<records>\n"),
            elements,
            replaced: 0,
        }
    }

    /// The document, and how many characters XML cannot hold were replaced.
    pub fn finish(mut self) -> (String, usize) {
        self.out.push_str("</records>\n");
        (self.out, self.replaced)
    }
}

impl Output for Writer {
    fn written(&self) -> usize {
        self.out.len()
    }
}

impl Sink for Writer {
    fn record(&mut self, record: Record) {
        self.out.push_str("  <record>\n");
        for (name, value) in &record {
            let element = match self.elements.get(&**name) {
                Some(element) => element.clone(),
                None => element_name(name),
            };
            let text = escape(&cell_text(value), &mut self.replaced);
            if text.is_empty() {
                self.out.push_str(&format!("    <{element}/>\n"));
            } else {
                self.out
                    .push_str(&format!("    <{element}>{text}</{element}>\n"));
            }
        }
        self.out.push_str("  </record>\n");
    }
}

/// Escapes text content. `\r` becomes a character reference because XML parsers turn a
/// literal one into `\n`; characters XML 1.0 forbids (most C0 controls) cannot be written
/// at all, so they become U+FFFD and are counted.
fn escape(text: &str, replaced: &mut usize) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(c),
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => {
                *replaced += 1;
                out.push('\u{fffd}');
            }
            _ => out.push(c),
        }
    }
    out
}

/// Turns a field name into a valid XML element name (XML 1.0, fifth edition, without `:`
/// since that would declare a namespace prefix): invalid characters become `_`, and a name
/// that cannot start an element gets a leading `_`.
fn element_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    for c in name.chars() {
        if out.is_empty() && !is_name_start(c) {
            out.push('_');
            if !is_name_char(c) {
                continue;
            }
        }
        out.push(if is_name_char(c) { c } else { '_' });
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

fn is_name_start(c: char) -> bool {
    matches!(c,
        'A'..='Z' | '_' | 'a'..='z' | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}'
        | '\u{F8}'..='\u{2FF}' | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}'
        | '\u{200C}'..='\u{200D}' | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}'
        | '\u{3001}'..='\u{D7FF}' | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}'
        | '\u{10000}'..='\u{EFFFF}')
}

fn is_name_char(c: char) -> bool {
    is_name_start(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::{run, strict};

    #[test]
    fn reads_records_fields_and_attributes() {
        let input = r#"<?xml version="1.0"?>
<!-- exported -->
<records>
  <record id="1"><name>Ada &amp; co&#x21;</name><age>36</age></record>
  <record id="2"><name><![CDATA[<Alan>]]></name><empty/></record>
  <record/>
</records>"#;
        let p = strict(parse, input);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(p.fields, ["id", "name", "age", "empty"]);
        assert_eq!(p.records.len(), 3);
        assert_eq!(p.records[0][1].1, json!("Ada & co!"));
        assert_eq!(p.records[1][1].1, json!("<Alan>"));
        assert_eq!(p.records[1][2].1, json!(""));
        assert!(p.records[2].is_empty());
    }

    #[test]
    fn mismatched_tags_are_located() {
        let p = strict(parse, "<records>\n  <record><a>1</b></record>\n</records>");
        assert_eq!(p.errors.len(), 1);
        assert_eq!(p.errors[0].line, Some(2));
        assert!(
            p.errors[0].message.contains("</a>"),
            "{}",
            p.errors[0].message
        );
    }

    #[test]
    fn malformed_documents_are_syntax_errors() {
        let cases = [
            ("<records><record>", "the document ends inside an element"),
            ("", "the document has no root element"),
            ("<a/><b/>", "more than one root element"),
            ("<a/>text", "text outside the root element"),
            ("<r>&bogus;</r>", "unknown entity &bogus;"),
            (
                "<!DOCTYPE r [<!ENTITY e \"x\">]><r/>",
                "document type declarations (DTDs) are not supported",
            ),
        ];
        for (input, message) in cases {
            let p = run(parse, input, false, false);
            assert_eq!(p.errors.len(), 1, "{input}: {:?}", p.errors);
            assert_eq!(p.errors[0].message, message, "{input}");
        }
        for input in ["<r a='1' a='2'/>", "<r>a & b</r>", "<r><x y=1/></r>"] {
            assert_eq!(run(parse, input, false, false).errors.len(), 1, "{input}");
        }
    }

    #[test]
    fn structural_problems_are_located() {
        let input = "<records>\n  loose &amp; more\n  <record>\n    <a><b>1</b>2</a>\n    text\n  <c/></record>\n</records>";
        let p = strict(parse, input);
        let lines: Vec<_> = p.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [Some(2), Some(4), Some(5)], "{:?}", p.errors);
        assert_eq!(p.records[0][0].1, json!("12"));
        assert_eq!(p.records[0][2], ("value".into(), json!("text")));
    }

    #[test]
    fn repeated_field_elements_are_renamed() {
        let p = strict(parse, "<r><x><t>a</t><t>b</t></x></r>");
        assert_eq!(p.errors.len(), 1);
        assert_eq!(p.fields, ["t", "t_2"]);
    }

    #[test]
    fn transform_normalizes_text() {
        let p = run(parse, "<r><x n=' 5 '><ok>true</ok><e/></x></r>", true, true);
        assert_eq!(
            p.records[0],
            [
                ("n".into(), json!(5)),
                ("ok".into(), json!(true)),
                ("e".into(), Value::Null)
            ]
        );
    }

    #[test]
    fn element_names_are_made_valid() {
        assert_eq!(element_name("name"), "name");
        assert_eq!(element_name("first name"), "first_name");
        assert_eq!(element_name("1st"), "_1st");
        assert_eq!(element_name("a:b"), "a_b");
        assert_eq!(element_name("@id"), "_id");
        assert_eq!(element_name("café"), "café");
        assert_eq!(element_name(""), "_");
    }

    #[test]
    fn writes_escaped_records_that_read_back() {
        let mut fields = Fields::default();
        let names = ["first name", "n", "none"].map(|n| fields.intern(n));
        let mut renamed = Vec::new();
        let mut writer = Writer::new(&fields, |issue| renamed.push(issue));
        writer.record(vec![
            (names[0].clone(), json!("<Ada> & \"co\"\r\n")),
            (names[1].clone(), json!({"k": 1})),
            (names[2].clone(), Value::Null),
        ]);
        let (text, replaced) = writer.finish();
        assert_eq!(
            text,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<records>\n  <record>\n    \
             <first_name>&lt;Ada&gt; &amp; \"co\"&#13;\n</first_name>\n    \
             <n>{\"k\":1}</n>\n    <none/>\n  </record>\n</records>\n"
        );
        assert_eq!((renamed.len(), replaced), (1, 0));

        let p = strict(parse, &text);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(p.records[0][0].1, json!("<Ada> & \"co\"\r\n"));
        assert_eq!(p.records[0][1].1, json!("{\"k\":1}"));
    }

    #[test]
    fn forbidden_characters_are_replaced_and_counted() {
        let mut replaced = 0;
        assert_eq!(escape("a\u{1}b\tc", &mut replaced), "a\u{fffd}b\tc");
        assert_eq!(replaced, 1);
    }
}
