// regex-tools: regular-expression test, extract and replace, as a Waygate plugin written in
// JavaScript and built with `jco componentize --backend qjs` (QuickJS). See ../README.md.
//
// How componentize-qjs maps the WIT world `waygate:plugin/plugin` onto this module:
// - the exported interface `provider` is the exported object `provider`, its functions in
//   camelCase (`call-tool` -> `callTool`);
// - records are plain objects with camelCase keys, `option<T>` is the value or `null`,
//   variants are `{ tag: "case-name", val }`, enums are their case name as a string;
// - a top-level `result<T, E>` returns `T` on success and *throws* `E` (the variant object,
//   not an Error) on failure. Anything else thrown traps the instance, and the caller then
//   only learns that the plugin crashed, so every body below catches everything and turns it
//   into a typed error.
// - the imported interface `log` is the default export of "waygate:plugin/log@0.1.0".
//
// Waygate runs a fresh instance for every call, so nothing here keeps state between calls.

import log from "waygate:plugin/log@0.1.0";

const PLUGIN_VERSION = "0.1.0";

/// Largest `text` accepted, in UTF-8 bytes (1 MiB).
const MAX_TEXT_BYTES = 1024 * 1024;
/// Largest `pattern` and `replacement`, in UTF-8 bytes.
const MAX_PATTERN_BYTES = 16 * 1024;
const MAX_REPLACEMENT_BYTES = 64 * 1024;
/// Default and largest number of matches `regex_extract` returns.
const DEFAULT_MAX_MATCHES = 100;
const MAX_MATCHES = 10000;
/// Largest number of replacements `regex_replace` makes.
const MAX_REPLACEMENTS = 100000;
/// Cap on the characters a result may carry (match texts, groups, replaced text), so that a
/// pattern with many overlapping captures cannot blow up the result: 2 Mi UTF-16 units.
const MAX_OUTPUT_CHARS = 2 * 1024 * 1024;

const FLAGS_DESCRIPTION =
  "JavaScript RegExp flags, any of d, g, i, m, s, u, v, y (for example \"i\" or \"gm\"). Default: none.";

const TOOLS = [
  {
    name: "regex_test",
    title: "Regex test",
    description:
      "Test whether a JavaScript regular expression matches a text. Returns `matched` and the " +
      "first match (its text, index in UTF-16 code units, numbered capture groups and named " +
      "groups), or null when nothing matches.",
    schema: {
      type: "object",
      properties: {
        pattern: { type: "string", description: "The regular expression, in JavaScript RegExp syntax, without surrounding slashes." },
        flags: { type: "string", description: FLAGS_DESCRIPTION },
        text: { type: "string", description: "The text to search (at most 1 MiB)." },
      },
      required: ["pattern", "text"],
      additionalProperties: false,
    },
  },
  {
    name: "regex_extract",
    title: "Regex extract",
    description:
      "Find every match of a JavaScript regular expression in a text (the g flag is implied). " +
      "Returns the matches in order, each with its text, index in UTF-16 code units, numbered " +
      "capture groups and named groups, plus `count` and `truncated` (true when `max` stopped " +
      "the search early).",
    schema: {
      type: "object",
      properties: {
        pattern: { type: "string", description: "The regular expression, in JavaScript RegExp syntax, without surrounding slashes." },
        flags: { type: "string", description: FLAGS_DESCRIPTION + " The g flag is always added." },
        text: { type: "string", description: "The text to search (at most 1 MiB)." },
        max: {
          type: "integer",
          minimum: 1,
          maximum: MAX_MATCHES,
          description: `The most matches to return (default ${DEFAULT_MAX_MATCHES}, at most ${MAX_MATCHES}).`,
        },
      },
      required: ["pattern", "text"],
      additionalProperties: false,
    },
  },
  {
    name: "regex_replace",
    title: "Regex replace",
    description:
      "Replace matches of a JavaScript regular expression in a text, as String.prototype.replace " +
      "does: only the first match unless the flags include g. The replacement may use $&, $1..$99, " +
      "$<name>, $` , $' and $$. Returns the new `text` and `count`, the number of replacements made.",
    schema: {
      type: "object",
      properties: {
        pattern: { type: "string", description: "The regular expression, in JavaScript RegExp syntax, without surrounding slashes." },
        flags: { type: "string", description: FLAGS_DESCRIPTION + " Add g to replace every match." },
        text: { type: "string", description: "The text to change (at most 1 MiB)." },
        replacement: {
          type: "string",
          description: "The replacement string; $&, $1..$99, $<name>, $`, $' and $$ are expanded as in JavaScript.",
        },
      },
      required: ["pattern", "text", "replacement"],
      additionalProperties: false,
    },
  },
];

// ---- errors -------------------------------------------------------------------------------

/// A failure that becomes a typed WIT `call-error`.
class ToolError {
  constructor(tag, message) {
    this.tag = tag;
    this.message = message;
  }
}

const invalidArguments = (message) => new ToolError("invalid-arguments", message);
const failed = (message) => new ToolError("failed", message);

// ---- argument checks ----------------------------------------------------------------------

/// UTF-8 length of a string, stopping early once it passes `limit`.
function utf8Length(s, limit) {
  if (s.length > limit) return s.length; // every UTF-16 unit is at least one UTF-8 byte
  let bytes = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        bytes += 4;
        i++;
      } else bytes += 3;
    } else bytes += 3;
    if (bytes > limit) return bytes;
  }
  return bytes;
}

function requireString(args, key, maxBytes, optional = false) {
  const value = args[key];
  if (value === undefined || value === null) {
    if (optional) return undefined;
    throw invalidArguments(`\`${key}\` is required`);
  }
  if (typeof value !== "string") throw invalidArguments(`\`${key}\` must be a string`);
  if (utf8Length(value, maxBytes) > maxBytes) {
    throw invalidArguments(`\`${key}\` is longer than ${maxBytes} bytes (the limit of this tool)`);
  }
  return value;
}

/// Compiles the pattern; a bad pattern or flag is the caller's mistake, reported with the
/// engine's own SyntaxError message.
function compile(pattern, flags, forceGlobal) {
  let f = flags ?? "";
  if (forceGlobal && !f.includes("g")) f += "g";
  try {
    return new RegExp(pattern, f);
  } catch (e) {
    const message = e && e.message ? e.message : String(e);
    throw invalidArguments(`invalid regular expression /${pattern}/${f}: ${message}`);
  }
}

function parseArguments(argumentsJson) {
  let args;
  try {
    args = JSON.parse(argumentsJson);
  } catch (e) {
    throw invalidArguments(`arguments are not JSON: ${e.message}`);
  }
  if (args === null || typeof args !== "object" || Array.isArray(args)) {
    throw invalidArguments("arguments must be a JSON object");
  }
  return args;
}

// ---- matching -----------------------------------------------------------------------------

/// Counts the characters a result carries and fails once they pass MAX_OUTPUT_CHARS.
class Budget {
  constructor() {
    this.used = 0;
  }
  spend(n) {
    this.used += n;
    if (this.used > MAX_OUTPUT_CHARS) {
      throw failed(
        `the result would exceed ${MAX_OUTPUT_CHARS} characters; use a smaller text, fewer matches or fewer capture groups`,
      );
    }
  }
}

/// A RegExp match as JSON: text, index, numbered groups (null when a group did not take part)
/// and named groups.
function describeMatch(m, budget) {
  const groups = [];
  budget.spend(m[0].length);
  for (let i = 1; i < m.length; i++) {
    const g = m[i] === undefined ? null : m[i];
    if (g !== null) budget.spend(g.length);
    groups.push(g);
  }
  const named = {};
  if (m.groups) {
    for (const name of Object.keys(m.groups)) {
      const g = m.groups[name] === undefined ? null : m.groups[name];
      if (g !== null) budget.spend(g.length);
      named[name] = g;
    }
  }
  return { match: m[0], index: m.index, end: m.index + m[0].length, groups, named_groups: named };
}

/// Where to continue after an empty match: one code point on with the u or v flag, else one
/// UTF-16 unit, as String.prototype.matchAll does.
function advance(text, index, unicode) {
  if (!unicode || index + 1 >= text.length) return index + 1;
  const c = text.charCodeAt(index);
  if (c >= 0xd800 && c <= 0xdbff) {
    const d = text.charCodeAt(index + 1);
    if (d >= 0xdc00 && d <= 0xdfff) return index + 2;
  }
  return index + 1;
}

/// Expands a replacement template for one match, as GetSubstitution in ECMA-262 does.
function expand(template, m, text) {
  if (!template.includes("$")) return template;
  const position = m.index;
  const matched = m[0];
  const captures = m.length - 1;
  let out = "";
  for (let i = 0; i < template.length; i++) {
    const c = template[i];
    if (c !== "$" || i + 1 >= template.length) {
      out += c;
      continue;
    }
    const n = template[i + 1];
    if (n === "$") {
      out += "$";
      i++;
    } else if (n === "&") {
      out += matched;
      i++;
    } else if (n === "`") {
      out += text.slice(0, position);
      i++;
    } else if (n === "'") {
      out += text.slice(position + matched.length);
      i++;
    } else if (n >= "0" && n <= "9") {
      // Two digits win when they name an existing group, then one digit; else literal.
      const two = i + 2 < template.length && template[i + 2] >= "0" && template[i + 2] <= "9";
      const twoIndex = two ? Number(template[i + 1] + template[i + 2]) : 0;
      const oneIndex = Number(n);
      if (two && twoIndex >= 1 && twoIndex <= captures) {
        out += m[twoIndex] ?? "";
        i += 2;
      } else if (oneIndex >= 1 && oneIndex <= captures) {
        out += m[oneIndex] ?? "";
        i++;
      } else {
        out += "$";
      }
    } else if (n === "<" && m.groups !== undefined) {
      const close = template.indexOf(">", i + 2);
      if (close < 0) {
        out += "$";
      } else {
        const name = template.slice(i + 2, close);
        out += m.groups[name] ?? "";
        i = close;
      }
    } else {
      out += "$";
    }
  }
  return out;
}

function regexTest(args) {
  const pattern = requireString(args, "pattern", MAX_PATTERN_BYTES);
  const flags = requireString(args, "flags", 64, true);
  const text = requireString(args, "text", MAX_TEXT_BYTES);
  const re = compile(pattern, flags, false);
  re.lastIndex = 0;
  const m = re.exec(text);
  return { matched: m !== null, match: m === null ? null : describeMatch(m, new Budget()) };
}

function regexExtract(args) {
  const pattern = requireString(args, "pattern", MAX_PATTERN_BYTES);
  const flags = requireString(args, "flags", 64, true);
  const text = requireString(args, "text", MAX_TEXT_BYTES);
  let max = args.max ?? DEFAULT_MAX_MATCHES;
  if (!Number.isInteger(max) || max < 1 || max > MAX_MATCHES) {
    throw invalidArguments(`\`max\` must be an integer from 1 to ${MAX_MATCHES}`);
  }
  const re = compile(pattern, flags, true);
  const unicode = re.unicode || re.unicodeSets === true;
  const budget = new Budget();
  const matches = [];
  let truncated = false;
  re.lastIndex = 0;
  for (;;) {
    const m = re.exec(text);
    if (m === null) break;
    if (matches.length === max) {
      truncated = true;
      break;
    }
    matches.push(describeMatch(m, budget));
    if (m[0].length === 0) re.lastIndex = advance(text, re.lastIndex, unicode);
  }
  return { count: matches.length, truncated, matches };
}

function regexReplace(args) {
  const pattern = requireString(args, "pattern", MAX_PATTERN_BYTES);
  const flags = requireString(args, "flags", 64, true);
  const text = requireString(args, "text", MAX_TEXT_BYTES);
  const replacement = requireString(args, "replacement", MAX_REPLACEMENT_BYTES);
  const re = compile(pattern, flags, false);
  const global = re.global;
  const unicode = re.unicode || re.unicodeSets === true;
  const budget = new Budget();
  const pieces = [];
  let count = 0;
  let last = 0; // end of the previous match: text before the next match is copied as is
  re.lastIndex = 0;
  for (;;) {
    const m = re.exec(text);
    if (m === null) break;
    if (count === MAX_REPLACEMENTS) {
      throw failed(`more than ${MAX_REPLACEMENTS} replacements; narrow the pattern or split the text`);
    }
    const kept = text.slice(last, m.index);
    const replaced = expand(replacement, m, text);
    budget.spend(kept.length + replaced.length);
    pieces.push(kept, replaced);
    count++;
    last = m.index + m[0].length;
    if (!global) break; // without g (or with only y) exactly one replacement, as in JavaScript
    if (m[0].length === 0) re.lastIndex = advance(text, re.lastIndex, unicode);
  }
  const rest = text.slice(last);
  budget.spend(rest.length);
  pieces.push(rest);
  return { text: pieces.join(""), count };
}

const HANDLERS = {
  regex_test: regexTest,
  regex_extract: regexExtract,
  regex_replace: regexReplace,
};

// ---- the WIT export -------------------------------------------------------------------------

function logDebug(message, fields) {
  try {
    log.log("debug", message, fields);
  } catch (_) {
    // Logging must never fail a call.
  }
}

export const provider = {
  metadata() {
    return {
      name: "regex-tools",
      version: PLUGIN_VERSION,
      description: "Regular-expression test, extract and replace, written in JavaScript",
      author: "Waygate",
      capabilities: ["transform", "text"],
      configSchemaJson: null,
    };
  },

  listTools() {
    return TOOLS.map((t) => ({
      name: t.name,
      title: t.title,
      description: t.description,
      inputSchemaJson: JSON.stringify(t.schema),
      outputSchemaJson: null,
      hints: { readOnly: true, destructive: false, idempotent: true, openWorld: false },
    }));
  },

  // The host tags every log line with the call's request id, so `context` is not needed here.
  callTool(tool, argumentsJson, _context) {
    const started = Date.now();
    let outcome = "ok";
    try {
      const handler = Object.prototype.hasOwnProperty.call(HANDLERS, tool) ? HANDLERS[tool] : undefined;
      if (handler === undefined) {
        throw new ToolError("unknown-tool", `regex-tools has no tool named ${JSON.stringify(tool)}`);
      }
      const result = handler(parseArguments(argumentsJson));
      return { content: [{ tag: "json", val: JSON.stringify(result) }], isError: false };
    } catch (e) {
      if (e instanceof ToolError) {
        outcome = e.tag;
        throw { tag: e.tag, val: e.message };
      }
      outcome = "failed";
      const message = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      throw { tag: "failed", val: message };
    } finally {
      logDebug(`${tool}: ${outcome}`, [
        ["tool", String(tool)],
        ["outcome", outcome],
        ["elapsed_ms", String(Date.now() - started)],
      ]);
    }
  },

  listResources() {
    return [];
  },

  readResource(uri) {
    throw { tag: "not-found", val: `regex-tools serves no resources (asked for ${uri})` };
  },

  listPrompts() {
    return [];
  },

  getPrompt(name, _arguments) {
    throw { tag: "not-found", val: `regex-tools offers no prompts (asked for ${name})` };
  },
};
