//! Query strings: decoding, and the API's pagination (`page`, `limit`, `X-Total-Count`,
//! `X-Page-Count`, `Link`).
//! Owns: [`pairs`], [`integer`], [`Page`]. Never: panics on any query string.
//! Limits: at most [`MAX_LIMIT`] items per page.

use super::{ApiError, Body, json_response};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

/// Items per page unless the client asks.
const DEFAULT_LIMIT: u64 = 10;
/// Most items per page.
const MAX_LIMIT: u64 = 100;

/// The decoded `key=value` pairs of a request's query.
pub(super) fn pairs(parts: &Parts) -> Vec<(String, String)> {
    parts
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

/// Percent-decoding with `+` as space; invalid escapes are kept as they are.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(high), Some(low)) => {
                        out.push((high * 16 + low) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One query parameter as an integer within `range`.
///
/// # Errors
///
/// 400 naming the parameter, the value and the range.
pub(super) fn integer(
    pairs: &[(String, String)],
    key: &str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ApiError> {
    let Some((_, text)) = pairs.iter().rev().find(|(k, _)| k == key) else {
        return Ok(default);
    };
    text.parse::<u64>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            ApiError::invalid_request(format!(
                "{key} must be an integer from {} to {}, got {text:?}",
                range.start(),
                range.end()
            ))
        })
}

/// A page request.
pub(super) struct Page {
    /// 1-based page number.
    pub number: u64,
    /// Items per page.
    pub limit: u64,
}

impl Page {
    /// `page` and `limit` from the query.
    ///
    /// # Errors
    ///
    /// 400 for a value out of range.
    pub fn from_query(pairs: &[(String, String)]) -> Result<Page, ApiError> {
        Ok(Page {
            number: integer(pairs, "page", 1, 1..=u64::from(u32::MAX))?,
            limit: integer(pairs, "limit", DEFAULT_LIMIT, 1..=MAX_LIMIT)?,
        })
    }

    /// Items skipped before this page.
    pub fn offset(&self) -> u64 {
        (self.number - 1).saturating_mul(self.limit)
    }

    /// The 200 answer carrying this page's `items` under `key`, of `total` in all, with the
    /// pagination fields and headers.
    pub fn respond(&self, key: &str, items: Value, total: u64, parts: &Parts) -> Response<Body> {
        let mut response = json_response(
            StatusCode::OK,
            &json!({ key: items, "total": total, "page": self.number, "limit": self.limit }),
        );
        self.headers(total, parts, response.headers_mut());
        response
    }

    /// The pagination headers for `total` items. Links are relative to the server, so they
    /// never repeat a client's `Host` header back.
    fn headers(&self, total: u64, parts: &Parts, headers: &mut HeaderMap) {
        let pages = total.div_ceil(self.limit);
        let path = parts.uri.path();
        let link = |page: u64, rel: &str| {
            format!("<{path}?page={page}&limit={}>; rel=\"{rel}\"", self.limit)
        };
        let mut links = Vec::new();
        if self.number < pages {
            links.push(link(self.number + 1, "next"));
        }
        if self.number > 1 {
            links.push(link((self.number - 1).min(pages.max(1)), "prev"));
        }
        links.push(link(1, "first"));
        links.push(link(pages.max(1), "last"));
        headers.insert("x-total-count", HeaderValue::from(total));
        headers.insert("x-page-count", HeaderValue::from(pages));
        if let Ok(value) = HeaderValue::from_str(&links.join(", ")) {
            headers.insert(hyper::header::LINK, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_and_plus() {
        assert_eq!(decode("2026-01-01T00%3A00%3A00Z"), "2026-01-01T00:00:00Z");
        assert_eq!(decode("a+b%2"), "a b%2");
        assert_eq!(decode("%zz"), "%zz");
        assert_eq!(
            decode("%é1"),
            "%é1",
            "a multi-byte character after % is kept"
        );
    }

    #[test]
    fn integers_are_range_checked() {
        let pairs = vec![("limit".to_owned(), "500".to_owned())];
        assert!(integer(&pairs, "limit", 10, 1..=100).is_err());
        assert_eq!(integer(&pairs, "page", 1, 1..=9).unwrap(), 1);
    }
}
