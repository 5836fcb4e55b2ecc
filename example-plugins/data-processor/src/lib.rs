//! `data-processor`: validates, describes and converts tabular data in JSON, CSV or XML; the
//! API spec's `process_data` command.
//!
//! Build: `cargo xtask plugins`; run: `cargo xtask run`, then call the `process_data` tool.
//! Grants: none. It reads nothing but its arguments and its `[config]`: `max_input_bytes`
//! (default 10 MiB) and `max_output_bytes` (default 8 MiB, the host's default result limit).
//! Memory stays within the default 64 MiB at those sizes because no pass holds the data set:
//! see `model`.
//!
//! Invalid data is an answer, not a failure: checking data is this tool's job, so a call on
//! broken input succeeds with `"valid": false` and the located errors. Only when a conversion
//! was asked for and not produced (invalid input, or output over the limit, explained in
//! `warnings`) is the same report flagged as a tool error, so the client sees that the
//! requested work did not happen. Input over the size limit is a plain tool error.

mod csv;
mod json;
mod model;
mod xml;

use model::{Capped, Context, Count, Fields, Issue, Issues, Output};
use waygate_plugin_sdk::prelude::*;

/// A data format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(inline)]
enum Format {
    #[default]
    Json,
    Csv,
    Xml,
}

/// Arguments of `process_data`.
#[derive(Deserialize, JsonSchema)]
struct ProcessArgs {
    /// The data itself, as text (not a file name or URL).
    input: String,
    /// Format of `input`: `json` (an array of flat objects, or one object), `csv` (RFC 4180
    /// with a header row) or `xml` (`<records><record><field>value</field>…</record></records>`).
    #[serde(default)]
    format: Format,
    /// Convert the data to this format and return it as `output`; omit it to only validate
    /// and describe the data. Nested JSON values become JSON text in CSV and XML.
    output_format: Option<Format>,
    /// Processing switches.
    #[serde(default)]
    options: Options,
}

/// Processing switches of `process_data`.
#[derive(Deserialize, JsonSchema)]
#[schemars(inline)]
struct Options {
    /// Treat structural problems (rows with the wrong number of fields, duplicate or empty
    /// names, stray quotes, non-flat records) as errors that make the input invalid. When
    /// false they are reported as warnings and the data is converted anyway; syntax errors
    /// always make it invalid.
    #[serde(default = "yes")]
    validate: bool,
    /// Normalise the data: trim field names and text, turn empty text into null, and text
    /// that spells a number or `true`/`false` exactly into a number or boolean. Returns
    /// `output` even without `output_format`, in the input's format.
    #[serde(default)]
    transform: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            validate: true,
            transform: false,
        }
    }
}

fn yes() -> bool {
    true
}

/// The plugin's `[config]` table.
#[derive(Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
struct Config {
    /// Largest `input` accepted, in bytes; larger inputs are refused with a tool error
    /// before any parsing, which bounds the memory and time a call can take.
    #[schemars(range(min = 1))]
    max_input_bytes: u64,
    /// Largest converted `output`, in bytes; a conversion that would be larger is stopped
    /// and reported in `warnings`. The default matches the host's default result limit, so
    /// the plugin says why instead of the host refusing the result.
    #[schemars(range(min = 1))]
    max_output_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_input_bytes: 10 * 1024 * 1024,
            max_output_bytes: 8 * 1024 * 1024,
        }
    }
}

/// What `process_data` returns.
#[derive(Debug, Serialize, JsonSchema)]
struct Report {
    /// The input's format.
    format: Format,
    /// Whether the input parsed and passed validation (no `errors`).
    valid: bool,
    /// Number of records: objects, data rows (the CSV header is not one) or XML records.
    records: usize,
    /// Every field name, in order of first appearance.
    fields: Vec<String>,
    /// Number of fields.
    field_count: usize,
    /// Problems that make the input invalid, located by line, column and record where known.
    errors: Vec<Issue>,
    /// Problems that were worked around, and notes about the output.
    warnings: Vec<Issue>,
    /// Format of `output`; present with `output`.
    #[serde(skip_serializing_if = "Option::is_none")]
    output_format: Option<Format>,
    /// The converted data; present when conversion or transformation was asked for and the
    /// input is valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<String>,
}

fn parse(format: Format, input: &str, cx: &mut Context<'_>) {
    match format {
        Format::Json => json::parse(input, cx),
        Format::Csv => csv::parse(input, cx),
        Format::Xml => xml::parse(input, cx),
    }
}

/// Parses, checks and optionally converts `input`: one pass to check it and learn its
/// fields, and a second to write the conversion (see [`model`] for why not one).
fn process(
    input: &str,
    format: Format,
    output_format: Option<Format>,
    options: &Options,
    config: &Config,
) -> Report {
    // Spreadsheet exports often begin with a byte order mark, which is not data.
    let input = input.strip_prefix('\u{feff}').unwrap_or(input);
    let mut count = Count::default();
    let mut cx = Context::new(options.validate, options.transform, &mut count);
    if input.trim().is_empty() {
        cx.issues.syntax(Issue::new("input is empty"));
    } else {
        parse(format, input, &mut cx);
    }
    let Context {
        fields, mut issues, ..
    } = cx;
    let records = count.0;

    let target = output_format.or(options.transform.then_some(format));
    let output = match target {
        Some(target) if issues.is_valid() => {
            let pass = Pass {
                input,
                format,
                transform: options.transform,
                max_output: usize::try_from(config.max_output_bytes).unwrap_or(usize::MAX),
            };
            convert(&pass, target, &fields, &mut issues)
        }
        _ => None,
    };

    let valid = issues.is_valid();
    let (errors, warnings) = issues.finish();
    Report {
        format,
        valid,
        records,
        fields: fields.names().iter().map(|n| n.to_string()).collect(),
        field_count: fields.names().len(),
        errors,
        warnings,
        output_format: output.as_ref().and(target),
        output,
    }
}

/// What the second pass reads and how much it may write.
struct Pass<'a> {
    input: &'a str,
    format: Format,
    transform: bool,
    max_output: usize,
}

impl Pass<'_> {
    /// Parses the input again into `writer`; false when the output outgrew the limit. The
    /// parse's findings repeat the first pass's, so they go nowhere.
    fn write(&self, writer: &mut dyn Output) -> bool {
        let mut capped = Capped::new(writer, self.max_output);
        parse(
            self.format,
            self.input,
            &mut Context::new(false, self.transform, &mut capped),
        );
        !capped.overflowed()
    }
}

/// The second pass: the conversion of valid input into `target`, or none with a warning
/// saying why.
fn convert(
    pass: &Pass<'_>,
    target: Format,
    fields: &Fields,
    issues: &mut Issues,
) -> Option<String> {
    let written = match target {
        Format::Csv => {
            let mut writer = csv::Writer::new(fields);
            pass.write(&mut writer).then(|| writer.finish())
        }
        Format::Json => {
            let mut writer = json::Writer::new();
            pass.write(&mut writer).then(|| writer.finish())
        }
        Format::Xml => {
            let mut writer = xml::Writer::new(fields, |issue| issues.warn(issue));
            pass.write(&mut writer).then(|| {
                let (output, replaced) = writer.finish();
                if replaced > 0 {
                    issues.warn(Issue::new(format!(
                        "{replaced} characters that XML 1.0 cannot hold were written as U+FFFD"
                    )));
                }
                output
            })
        }
    };
    if written.is_none() {
        issues.warn(Issue::new(format!(
            "not converted: the output would be larger than {} bytes (max_output_bytes)",
            pass.max_output
        )));
    }
    written
}

struct DataProcessor;

impl Plugin for DataProcessor {
    fn metadata() -> Metadata {
        Metadata::new(
            "data-processor",
            env!("CARGO_PKG_VERSION"),
            "Validates, describes and converts tabular data between JSON, CSV and XML",
        )
        .author("Waygate")
        .capabilities(&["process", "validate", "transform"])
        .config::<Config>()
    }

    fn tools() -> Vec<Tool> {
        vec![
            Tool::new::<ProcessArgs>(
                "process_data",
                "Parse tabular data given as JSON, CSV or XML text: check it, count its records, \
                 list its fields, report errors with line numbers, and optionally convert it \
                 to another of these formats. Invalid data is reported with \"valid\": false.",
            )
            .title("Process data")
            .read_only()
            .output::<Report>(),
        ]
    }

    fn call(tool: &str, arguments: Arguments, _: &CallContext) -> CallResult {
        match tool {
            "process_data" => {
                let args = arguments.parse::<ProcessArgs>()?;
                // The raw JSON holds a second copy of the input; memory is the scarce thing.
                drop(arguments);
                let config = config::get::<Config>()?;
                let size = args.input.len() as u64;
                if size > config.max_input_bytes {
                    return Ok(ToolResult::error(format!(
                        "input is {size} bytes, over this plugin's limit of {} bytes; \
                         send the data in smaller pieces",
                        config.max_input_bytes
                    )));
                }
                let wanted_output = args.output_format.is_some() || args.options.transform;
                let report = process(
                    &args.input,
                    args.format,
                    args.output_format,
                    &args.options,
                    &config,
                );
                drop(args);
                let failed = wanted_output && report.output.is_none();
                let mut result = ToolResult::json(report);
                result.is_error = failed;
                Ok(result)
            }
            _ => Err(CallError::unknown_tool(tool)),
        }
    }
}

export_plugin!(DataProcessor);

#[cfg(test)]
mod tests {
    use super::*;
    use waygate_plugin_sdk::serde_json;

    fn options(validate: bool, transform: bool) -> Options {
        Options {
            validate,
            transform,
        }
    }

    #[test]
    fn describes_valid_csv_without_converting() {
        let report = process(
            "a,b\n1,2\n3,4\n",
            Format::Csv,
            None,
            &Options::default(),
            &Config::default(),
        );
        assert!(report.valid);
        assert_eq!(report.records, 2);
        assert_eq!(report.fields, ["a", "b"]);
        assert_eq!(report.field_count, 2);
        assert!(report.output.is_none());
        let value = serde_json::to_value(&report).unwrap();
        assert_eq!(value["format"], "csv");
        assert!(value.get("output").is_none());
    }

    #[test]
    fn converts_csv_to_json_keeping_column_order() {
        let report = process(
            "zeta,alpha\n\"x, y\",2\n",
            Format::Csv,
            Some(Format::Json),
            &options(true, true),
            &Config::default(),
        );
        assert!(report.valid, "{:?}", report.errors);
        assert_eq!(report.output_format, Some(Format::Json));
        assert_eq!(
            report.output.unwrap(),
            "[\n  {\n    \"zeta\": \"x, y\",\n    \"alpha\": 2\n  }\n]"
        );
    }

    #[test]
    fn converts_json_to_csv_with_nested_values_as_json_text() {
        let input = r#"[{"id": 1, "tags": ["a", "b"]}, {"id": 2, "note": "hi"}]"#;
        let report = process(
            input,
            Format::Json,
            Some(Format::Csv),
            &Options::default(),
            &Config::default(),
        );
        assert_eq!(
            report.output.unwrap(),
            "id,tags,note\n1,\"[\"\"a\"\",\"\"b\"\"]\",\n2,,hi\n"
        );
    }

    #[test]
    fn json_to_xml_to_csv_round_trip() {
        let input = r#"[{"name": "Ada", "year": 1815}, {"name": "Alan & co", "year": 1912}]"#;
        let xml = process(
            input,
            Format::Json,
            Some(Format::Xml),
            &Options::default(),
            &Config::default(),
        )
        .output
        .unwrap();
        let csv = process(
            &xml,
            Format::Xml,
            Some(Format::Csv),
            &Options::default(),
            &Config::default(),
        );
        assert!(csv.valid, "{:?}", csv.errors);
        assert_eq!(csv.output.unwrap(), "name,year\nAda,1815\nAlan & co,1912\n");
    }

    #[test]
    fn invalid_input_is_reported_and_not_converted() {
        let report = process(
            "a,b\n1,2,3\n",
            Format::Csv,
            Some(Format::Json),
            &Options::default(),
            &Config::default(),
        );
        assert!(!report.valid);
        assert_eq!(report.errors[0].line, Some(2));
        assert!(report.output.is_none());
        assert!(report.output_format.is_none());
    }

    #[test]
    fn without_validation_structural_problems_are_warnings() {
        let report = process(
            "a,b\n1,2,3\n",
            Format::Csv,
            Some(Format::Csv),
            &options(false, false),
            &Config::default(),
        );
        assert!(report.valid);
        assert_eq!(report.warnings.len(), 1);
        assert_eq!(report.output.unwrap(), "a,b,column_3\n1,2,3\n");
    }

    #[test]
    fn transform_alone_rewrites_in_the_input_format() {
        let report = process(
            r#"[{" n ": " 5 "}]"#,
            Format::Json,
            None,
            &options(true, true),
            &Config::default(),
        );
        assert_eq!(report.output_format, Some(Format::Json));
        assert_eq!(report.output.unwrap(), "[\n  {\n    \"n\": 5\n  }\n]");
    }

    #[test]
    fn empty_input_is_invalid_in_every_format() {
        for format in [Format::Json, Format::Csv, Format::Xml] {
            let report = process(" \n", format, None, &Options::default(), &Config::default());
            assert!(!report.valid);
            assert_eq!(report.errors[0].message, "input is empty");
        }
    }

    #[test]
    fn a_sparse_table_stops_at_the_output_limit() {
        // Objects with distinct keys: as CSV, every row gets a cell for every key.
        let keys: Vec<String> = (0..2000).map(|i| format!("{{\"k{i}\": 1}}")).collect();
        let input = format!("[{}]", keys.join(","));
        let config = Config {
            max_output_bytes: 100_000,
            ..Config::default()
        };
        let report = process(
            &input,
            Format::Json,
            Some(Format::Csv),
            &Options::default(),
            &config,
        );
        assert!(report.valid);
        assert_eq!(report.field_count, 2000);
        assert!(report.output.is_none());
        assert!(report.warnings[0].message.starts_with("not converted"));
    }

    #[test]
    fn output_past_the_limit_is_refused_with_a_warning() {
        let input = "a\n1\n2\n3\n4\n";
        let small = Config {
            max_output_bytes: 8,
            ..Config::default()
        };
        for target in [Format::Csv, Format::Json, Format::Xml] {
            let report = process(
                input,
                Format::Csv,
                Some(target),
                &Options::default(),
                &small,
            );
            assert!(report.valid);
            assert!(report.output.is_none(), "{target:?}");
            assert_eq!(
                report.warnings.last().unwrap().message,
                "not converted: the output would be larger than 8 bytes (max_output_bytes)"
            );
        }
        let fits = Config {
            max_output_bytes: 8,
            ..Config::default()
        };
        let report = process(
            "a\n1\n",
            Format::Csv,
            Some(Format::Csv),
            &Options::default(),
            &fits,
        );
        assert_eq!(report.output.as_deref(), Some("a\n1\n"));
    }

    #[test]
    fn a_byte_order_mark_is_not_data() {
        let report = process(
            "\u{feff}id\n1\n",
            Format::Csv,
            None,
            &Options::default(),
            &Config::default(),
        );
        assert_eq!(report.fields, ["id"]);
    }

    #[test]
    fn argument_defaults_match_the_spec() {
        let args: ProcessArgs = serde_json::from_str(r#"{"input": "[]"}"#).unwrap();
        assert_eq!(args.format, Format::Json);
        assert!(args.output_format.is_none());
        assert!(args.options.validate);
        assert!(!args.options.transform);
        let args: ProcessArgs = serde_json::from_str(
            r#"{"input": "", "format": "xml", "options": {"transform": true}}"#,
        )
        .unwrap();
        assert_eq!(args.format, Format::Xml);
        assert!(args.options.validate);
    }

    #[test]
    fn config_defaults_to_ten_mebibytes_and_rejects_unknown_keys() {
        let config: Config = serde_json::from_str("{}").unwrap();
        assert_eq!(config.max_input_bytes, 10 * 1024 * 1024);
        assert_eq!(config.max_output_bytes, 8 * 1024 * 1024);
        assert!(serde_json::from_str::<Config>(r#"{"max_input_byte": 1}"#).is_err());
    }

    #[test]
    fn schemas_are_self_contained_for_clients() {
        let schema = schemars::schema_for!(ProcessArgs).to_value();
        assert!(schema.get("$defs").is_none(), "{schema:#}");
        assert_eq!(schema["required"], json!(["input"]));
        assert_eq!(
            schema["properties"]["format"]["enum"],
            json!(["json", "csv", "xml"])
        );
        assert_eq!(schema["properties"]["format"]["default"], "json");
    }
}
