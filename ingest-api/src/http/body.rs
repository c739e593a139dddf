//! Reading request bodies under a byte cap that holds however the body arrives.
//!
//! The original service's limit was bypassed by chunked bodies; here the cap applies to the bytes
//! actually read (Content-Length is only a shortcut for refusing early, at once when the client
//! waits for `100 Continue`), and again to the decompressed bytes for `Content-Encoding: gzip` or `zstd`.
//! Decompression stops one byte past the cap, so a decompression bomb costs at most `cap` bytes
//! of memory. A body that stalls gets 408. [`read_json`] is the prologue every JSON handler uses;
//! [`accepted_encoding`] picks the coding of a compressed response.

use std::io::Read;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;

use super::error::ApiError;
use crate::AppState;

/// How the body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// As is.
    Identity,
    /// `gzip` (or `x-gzip`).
    Gzip,
    /// `zstd`.
    Zstd,
}

/// Largest zstd window accepted (2^23 = 8 MiB): bounds the decoder's memory per request.
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// How much of an oversized body is read and discarded before answering 413. Closing a socket
/// with unread data makes the kernel send a reset, and most clients then never see the answer;
/// draining a bounded amount lets them read the 413. Bodies larger still get the reset.
const DRAIN_MAX: u64 = 64 * 1024 * 1024;

/// The one value of a header whose meaning would be ambiguous if repeated (`Content-Type`,
/// `Idempotency-Key`, `Authorization`): 400 when it arrives on more than one line.
pub fn single<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a HeaderValue>, ApiError> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(ApiError::BadRequest(format!(
            "the {name} header was sent more than once; send it once"
        )));
    }
    Ok(first)
}

/// The request's `Content-Encoding`, or 415 for anything else. Repeated header lines mean their
/// comma-joined value (RFC 9110, section 5.3): `gzip` on one line and `br` on the next is
/// `gzip, br`. One coding is supported; a stack of several is refused, as is any unknown one.
pub fn encoding(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    let mut codings = Vec::new();
    for line in headers.get_all(header::CONTENT_ENCODING) {
        let line = line
            .to_str()
            .map_err(|_| ApiError::UnsupportedMediaType("unreadable Content-Encoding".into()))?;
        codings.extend(
            line.split(',')
                .map(|c| c.trim().to_ascii_lowercase())
                .filter(|c| !c.is_empty() && c != "identity"),
        );
    }
    match codings.as_slice() {
        [] => Ok(Encoding::Identity),
        [one] => match one.as_str() {
            "gzip" | "x-gzip" => Ok(Encoding::Gzip),
            "zstd" => Ok(Encoding::Zstd),
            other => Err(ApiError::UnsupportedMediaType(format!(
                "unsupported Content-Encoding {other:?}: send identity, gzip or zstd"
            ))),
        },
        several => Err(ApiError::UnsupportedMediaType(format!(
            "unsupported Content-Encoding {:?}: send one coding (identity, gzip or zstd), not a stack of them",
            several.join(", ")
        ))),
    }
}

/// The coding for a response body the client accepts (`Accept-Encoding`): zstd when it accepts
/// it, else gzip, else none (`q=0` refuses a coding).
pub fn accepted_encoding(headers: &HeaderMap) -> Encoding {
    let mut gzip = false;
    let mut zstd = false;
    for v in headers.get_all(header::ACCEPT_ENCODING) {
        for item in v.to_str().unwrap_or_default().split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            match coding.as_str() {
                "gzip" | "x-gzip" => gzip |= !refused,
                "zstd" => zstd |= !refused,
                _ => {}
            }
        }
    }
    if zstd {
        Encoding::Zstd
    } else if gzip {
        Encoding::Gzip
    } else {
        Encoding::Identity
    }
}

/// The media type of `Content-Type`, lower-cased and without parameters; 400 when repeated.
pub fn media_type(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    Ok(single(headers, header::CONTENT_TYPE.as_str())?
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        }))
}

/// Whether the client waits for `100 Continue` before sending the body.
fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::EXPECT)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Reads the whole body: at most `limit` bytes on the wire and after decoding, within `timeout`.
/// Returns the decoded bytes and the number of bytes read from the wire.
pub async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<(Bytes, usize), ApiError> {
    let encoding = encoding(headers)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        // A client that sent `Expect: 100-continue` has not sent the body and will not until it
        // hears `100 Continue`, which polling the body would trigger: answer 413 at once instead
        // (the body is never read, so the connection closes after the answer).
        if !expects_continue(headers) && declared.is_some_and(|n| n <= DRAIN_MAX) {
            let _ = tokio::time::timeout(timeout, drain(body)).await;
        }
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let raw = tokio::time::timeout(timeout, collect(body, limit))
        .await
        .map_err(|_| ApiError::BodyTimeout(timeout))??;
    let wire = raw.len();
    let decoded = match encoding {
        Encoding::Identity => raw,
        Encoding::Gzip | Encoding::Zstd if raw.len() <= 256 * 1024 => {
            decode(encoding, &raw, limit)?
        }
        // Large inputs decompress off the async workers.
        _ => tokio::task::spawn_blocking(move || decode(encoding, &raw, limit))
            .await
            .map_err(|e| ApiError::unavailable(format!("decoder task failed: {e}"), 1))??,
    };
    Ok((decoded, wire))
}

async fn collect(mut body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| ApiError::BadRequest(format!("error reading the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                drop(buf);
                drain(body).await;
                return Err(ApiError::PayloadTooLarge { limit });
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Reads and discards up to [`DRAIN_MAX`] more bytes of the body.
async fn drain(mut body: Body) {
    let mut seen = 0u64;
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            seen += data.len() as u64;
            if seen > DRAIN_MAX {
                return;
            }
        }
    }
}

fn decode(encoding: Encoding, raw: &[u8], limit: usize) -> Result<Bytes, ApiError> {
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(limit + 1));
    let result = match encoding {
        Encoding::Identity => return Ok(Bytes::copy_from_slice(raw)),
        Encoding::Gzip => flate2::read::MultiGzDecoder::new(raw)
            .take(limit as u64 + 1)
            .read_to_end(&mut out),
        Encoding::Zstd => zstd::stream::read::Decoder::new(raw)
            .and_then(|mut d| {
                d.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
                Ok(d)
            })
            .and_then(|d| d.take(limit as u64 + 1).read_to_end(&mut out)),
    };
    match result {
        Ok(_) if out.len() > limit => Err(ApiError::PayloadTooLarge { limit }),
        Ok(_) => Ok(Bytes::from(out)),
        Err(e) => Err(ApiError::BadRequest(format!(
            "the body is not valid {}: {e}",
            if encoding == Encoding::Gzip {
                "gzip"
            } else {
                "zstd"
            }
        ))),
    }
}

/// 415 unless the body is declared `application/json`.
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    match media_type(headers)?.as_deref() {
        Some("application/json") => Ok(()),
        Some(other) => Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type {other} is not supported: send application/json (curl: -H 'Content-Type: application/json')"
        ))),
        None => Err(ApiError::UnsupportedMediaType(
            "missing Content-Type: send application/json (curl: -H 'Content-Type: application/json')".into(),
        )),
    }
}

/// [`read_limited`] with the configured body-read timeout: the decoded bytes and the number of
/// bytes read from the wire.
pub async fn read_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<(Bytes, usize), ApiError> {
    read_limited(headers, body, limit, state.cfg.body_read_timeout).await
}

/// The prologue of a handler that takes a JSON body: 415 unless `Content-Type` is JSON, then
/// the body, read within `limit` bytes on the wire and after decoding (parsing is the
/// handler's, with FastAPI-style errors from `tunix-schemas`).
pub async fn read_json(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    require_json(headers)?;
    Ok(read_body(state, headers, body, limit).await?.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn with_lines(name: header::HeaderName, lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(name.clone(), HeaderValue::from_str(l).unwrap());
        }
        h
    }

    #[test]
    fn repeated_content_encoding_lines_are_one_comma_joined_value() {
        let ce = header::CONTENT_ENCODING;
        let enc = |lines: &[&str]| encoding(&with_lines(ce.clone(), lines));
        assert_eq!(enc(&[]).unwrap(), Encoding::Identity);
        assert_eq!(enc(&["gzip"]).unwrap(), Encoding::Gzip);
        assert_eq!(enc(&["identity", "zstd"]).unwrap(), Encoding::Zstd);
        assert_eq!(enc(&["gzip, identity"]).unwrap(), Encoding::Gzip);
        for refused in [
            &["gzip", "br"][..],
            &["gzip, br"],
            &["br"],
            &["gzip", "gzip"],
        ] {
            assert_eq!(enc(refused).unwrap_err().status(), 415, "{refused:?}");
        }
    }

    #[test]
    fn headers_that_must_not_repeat_are_400() {
        let h = with_lines(header::CONTENT_TYPE, &["application/json", "text/plain"]);
        assert_eq!(media_type(&h).unwrap_err().status(), 400);
        let h = with_lines(header::CONTENT_TYPE, &["Application/JSON; charset=utf-8"]);
        assert_eq!(media_type(&h).unwrap().as_deref(), Some("application/json"));
    }

    #[test]
    fn decompression_stops_past_the_cap() {
        let bomb = gzip(&vec![b'a'; 50 << 20]);
        assert!(
            bomb.len() < 100 << 10,
            "50 MiB of 'a' compresses to {} bytes",
            bomb.len()
        );
        assert!(matches!(
            decode(Encoding::Gzip, &bomb, 1 << 20),
            Err(ApiError::PayloadTooLarge { .. })
        ));
        let zbomb = zstd::encode_all(&vec![0u8; 50 << 20][..], 3).unwrap();
        assert!(matches!(
            decode(Encoding::Zstd, &zbomb, 1 << 20),
            Err(ApiError::PayloadTooLarge { .. })
        ));
        let ok = gzip(b"{\"a\": 1}");
        assert_eq!(
            &decode(Encoding::Gzip, &ok, 1 << 20).unwrap()[..],
            b"{\"a\": 1}"
        );
        assert_eq!(
            decode(Encoding::Gzip, &[0u8; 8], 1 << 20)
                .unwrap_err()
                .status(),
            400
        );
    }
}
