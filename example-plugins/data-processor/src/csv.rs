//! CSV per RFC 4180: a header row, then one record per row; fields may be quoted with `"`,
//! and quoted fields may hold commas, doubled quotes and line breaks.
//!
//! Hand-written rather than the `csv` crate because that parser is deliberately lenient: it
//! accepts an unclosed quote or a stray one without a word, which is exactly what a validator
//! has to report, with the line it is on.

use crate::model::{Context, Fields, Issue, Name, Output, Record, Sink, cell_text, unique_name};
use std::collections::HashMap;
use std::iter::Peekable;
use std::str::Chars;
use waygate_plugin_sdk::prelude::*;

/// Parses CSV text, handing each record to the context's sink.
pub fn parse(input: &str, cx: &mut Context<'_>) {
    let mut rows = Rows::new(input);
    let Some(header) = rows.next(cx) else {
        cx.issues.syntax(Issue::new("input has no header row"));
        return;
    };

    // The columns' names, in order; rows longer than the header add more.
    let mut columns: Vec<Name> = Vec::with_capacity(header.fields.len());
    for (index, raw) in header.fields.iter().enumerate() {
        let column = index + 1;
        let raw = cx.name(raw);
        let name = if raw.is_empty() {
            let name = unique_name(&format!("column_{column}"), |n| cx.fields.contains(n));
            cx.issues.structure(
                Issue::new(format!("column {column} has no name, called {name:?}"))
                    .at_line(header.line),
            );
            name
        } else {
            let name = unique_name(raw, |n| cx.fields.contains(n));
            if name != raw {
                cx.issues.structure(
                    Issue::new(format!("duplicate column name {raw:?}, kept as {name:?}"))
                        .at_line(header.line),
                );
            }
            name
        };
        columns.push(cx.fields.intern(&name));
    }
    let declared = columns.len();

    let mut number = 0;
    while let Some(row) = rows.next(cx) {
        number += 1;
        if row.fields.len() != declared {
            cx.issues.structure(
                Issue::new(format!(
                    "expected {declared} fields, found {}",
                    row.fields.len()
                ))
                .at_line(row.line)
                .in_record(number),
            );
        }
        // Values past the header still get a column, so a lenient conversion loses nothing.
        while columns.len() < row.fields.len() {
            let column = columns.len() + 1;
            let name = unique_name(&format!("column_{column}"), |n| cx.fields.contains(n));
            columns.push(cx.fields.intern(&name));
        }
        let record: Record = columns
            .iter()
            .zip(row.fields)
            .map(|(name, text)| (name.clone(), cx.value(Value::String(text))))
            .collect();
        cx.emit(record);
    }
}

/// One row as read: the line it starts on and its raw field texts.
#[derive(Debug, PartialEq)]
struct Row {
    line: usize,
    fields: Vec<String>,
}

/// What ended a field.
#[derive(Debug, PartialEq)]
enum End {
    Comma,
    LineBreak,
    Input,
}

/// Reads rows one at a time, counting `\r\n`, `\n` and a lone `\r` each as one line break.
struct Rows<'a> {
    chars: Peekable<Chars<'a>>,
    line: usize,
    column: usize,
}

impl<'a> Rows<'a> {
    fn new(input: &'a str) -> Self {
        Self {
            chars: input.chars().peekable(),
            line: 1,
            column: 1,
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        let line_ends = c == '\n' || (c == '\r' && self.peek() != Some('\n'));
        if line_ends {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    /// Consumes a line break if one is next; returns whether it did.
    fn line_break(&mut self) -> bool {
        match self.peek() {
            Some('\n') => {
                self.bump();
                true
            }
            Some('\r') => {
                self.bump();
                if self.peek() == Some('\n') {
                    self.bump();
                }
                true
            }
            _ => false,
        }
    }

    fn next(&mut self, cx: &mut Context<'_>) -> Option<Row> {
        // Empty lines carry no record; skipping them is what every spreadsheet does.
        while self.line_break() {}
        self.peek()?;
        let line = self.line;
        let mut fields = Vec::new();
        loop {
            let (field, end) = self.field(cx);
            fields.push(field);
            if end != End::Comma {
                return Some(Row { line, fields });
            }
        }
    }

    fn field(&mut self, cx: &mut Context<'_>) -> (String, End) {
        let mut value = String::new();
        if self.peek() == Some('"') {
            let (line, column) = (self.line, self.column);
            self.bump();
            loop {
                match self.bump() {
                    None => {
                        cx.issues
                            .syntax(Issue::new("quoted field is never closed").at((line, column)));
                        return (value, End::Input);
                    }
                    Some('"') if self.peek() == Some('"') => {
                        self.bump();
                        value.push('"');
                    }
                    Some('"') => break,
                    Some(c) => value.push(c),
                }
            }
            if !matches!(self.peek(), None | Some(',' | '\n' | '\r')) {
                cx.issues.structure(
                    Issue::new("text after the closing quote of a field")
                        .at((self.line, self.column)),
                );
            }
        }
        let mut stray_quote_reported = false;
        loop {
            match self.peek() {
                None => return (value, End::Input),
                Some(',') => {
                    self.bump();
                    return (value, End::Comma);
                }
                Some('\n' | '\r') => {
                    self.line_break();
                    return (value, End::LineBreak);
                }
                Some(c) => {
                    if c == '"' && !stray_quote_reported {
                        stray_quote_reported = true;
                        cx.issues.structure(
                            Issue::new(
                                "quote inside an unquoted field (quote the whole field and double the quote)",
                            )
                            .at((self.line, self.column)),
                        );
                    }
                    self.bump();
                    value.push(c);
                }
            }
        }
    }
}

/// Writes records as CSV under the header of every field, a field's cell empty when the
/// record lacks it. Rows end in `\n` rather than RFC 4180's `\r\n` because the text travels
/// inside JSON to a model, where `\r` is only noise; every CSV reader accepts both.
pub struct Writer {
    out: String,
    columns: HashMap<Name, usize>,
    width: usize,
}

impl Writer {
    pub fn new(fields: &Fields) -> Self {
        let names = fields.names();
        let mut out = String::new();
        push_row(&mut out, names.iter().map(|n| &**n), names.len() == 1);
        Self {
            out,
            columns: names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), i))
                .collect(),
            width: names.len(),
        }
    }

    pub fn finish(self) -> String {
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
        let mut cells = vec![String::new(); self.width];
        for (name, value) in &record {
            // Every name was seen by the checking pass, which built the header.
            if let Some(&column) = self.columns.get(name) {
                cells[column] = cell_text(value);
            }
        }
        push_row(
            &mut self.out,
            cells.iter().map(String::as_str),
            self.width == 1,
        );
    }
}

fn push_row<'a>(out: &mut String, cells: impl Iterator<Item = &'a str>, single: bool) {
    for (index, cell) in cells.enumerate() {
        if index > 0 {
            out.push(',');
        }
        // A lone empty cell would make an empty line, which readers skip: quote it.
        if cell.contains([',', '"', '\n', '\r']) || (single && cell.is_empty()) {
            out.push('"');
            out.push_str(&cell.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(cell);
        }
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::{run, strict};

    #[test]
    fn reads_a_header_and_records() {
        let p = strict(parse, "name,age\nAda,36\nAlan,41\n");
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(p.fields, ["name", "age"]);
        assert_eq!(p.records.len(), 2);
        assert_eq!(
            p.records[1],
            [("name".into(), json!("Alan")), ("age".into(), json!("41"))]
        );
    }

    #[test]
    fn quoted_fields_hold_commas_quotes_and_line_breaks() {
        let input = "a,b\r\n\"x, y\",\"say \"\"hi\"\"\"\r\n\"two\nlines\",z\r\n";
        let p = strict(parse, input);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(p.records[0][0].1, json!("x, y"));
        assert_eq!(p.records[0][1].1, json!("say \"hi\""));
        assert_eq!(p.records[1][0].1, json!("two\nlines"));
    }

    #[test]
    fn ragged_rows_are_reported_with_their_line() {
        // The record on line 4 starts after a two-line quoted field.
        let p = strict(parse, "a,b\n\"1\n2\",3\n4,5,6\n");
        assert_eq!(p.errors.len(), 1);
        assert_eq!(p.errors[0].line, Some(4));
        assert_eq!(p.errors[0].record, Some(2));
        assert_eq!(p.errors[0].message, "expected 2 fields, found 3");
        assert_eq!(p.fields, ["a", "b", "column_3"]);
    }

    #[test]
    fn an_unclosed_quote_is_a_syntax_error_even_when_not_validating() {
        let p = run(parse, "a,b\n1,\"open\n2,3\n", false, false);
        assert_eq!(p.errors.len(), 1);
        assert_eq!(p.errors[0].message, "quoted field is never closed");
        assert_eq!((p.errors[0].line, p.errors[0].column), (Some(2), Some(3)));
    }

    #[test]
    fn stray_quotes_are_located() {
        let p = strict(parse, "a,b\nab\"c,\"d\"e\n");
        let at: Vec<_> = p.errors.iter().map(|e| (e.line, e.column)).collect();
        assert_eq!(at, [(Some(2), Some(3)), (Some(2), Some(9))]);
        assert_eq!(p.records[0][0].1, json!("ab\"c"));
        assert_eq!(p.records[0][1].1, json!("de"));
    }

    #[test]
    fn empty_and_duplicate_names_are_renamed_and_reported() {
        let p = strict(parse, "id,,id\n1,2,3\n");
        assert_eq!(p.fields, ["id", "column_2", "id_2"]);
        assert_eq!(p.errors.len(), 2);
    }

    #[test]
    fn empty_input_has_no_header() {
        let p = strict(parse, "\n\n");
        assert_eq!(p.errors[0].message, "input has no header row");
    }

    #[test]
    fn header_only_input_is_valid_with_no_records() {
        let p = strict(parse, "a,b");
        assert!(p.errors.is_empty());
        assert_eq!(p.fields, ["a", "b"]);
        assert!(p.records.is_empty());
    }

    #[test]
    fn transform_trims_names_and_infers_values() {
        let p = run(parse, " id , ok \n 7 ,true\n", true, true);
        assert_eq!(p.fields, ["id", "ok"]);
        assert_eq!(
            p.records[0],
            [("id".into(), json!(7)), ("ok".into(), json!(true))]
        );
    }

    fn write(input: &str) -> String {
        let checked = strict(parse, input);
        assert!(checked.errors.is_empty(), "{:?}", checked.errors);
        let mut fields = Fields::default();
        for name in &checked.fields {
            fields.intern(name);
        }
        let mut writer = Writer::new(&fields);
        let mut cx = Context::new(true, false, &mut writer);
        parse(input, &mut cx);
        writer.finish()
    }

    #[test]
    fn writing_quotes_only_what_needs_it_and_round_trips() {
        let input = "a,b\n\"x,y\",\"{\"\"n\"\":1}\"\n,\"say \"\"hi\"\"\nbye\"\nplain,\n";
        assert_eq!(write(input), input);
    }

    #[test]
    fn missing_cells_are_left_empty() {
        let mut fields = Fields::default();
        let (a, b) = (fields.intern("a"), fields.intern("b"));
        let mut writer = Writer::new(&fields);
        writer.record(vec![(b, json!({"n": [1]}))]);
        writer.record(vec![(a, json!(2.5))]);
        assert_eq!(writer.finish(), "a,b\n,\"{\"\"n\"\":[1]}\"\n2.5,\n");
    }

    #[test]
    fn a_lone_empty_cell_survives_a_round_trip() {
        let mut fields = Fields::default();
        let a = fields.intern("a");
        let mut writer = Writer::new(&fields);
        writer.record(vec![(a, json!(""))]);
        let text = writer.finish();
        assert_eq!(text, "a\n\"\"\n");
        assert_eq!(strict(parse, &text).records.len(), 1);
    }
}
