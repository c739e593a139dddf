//! Reading request bodies under a byte cap that holds however the body arrives.
//!
//! The seed's limit was bypassed by chunked bodies; here the cap applies to the bytes actually
//! read (Content-Length is only a shortcut for refusing early), and again to the decompressed
//! bytes for `Content-Encoding: gzip` or `zstd`. Decompression stops one byte past the cap, so a
//! decompression bomb costs at most `cap` bytes of memory. A body that stalls gets 408.

use std::io::Read;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;

use crate::error::ApiError;

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

/// The request's `Content-Encoding`, or 415 for anything else.
pub fn encoding(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    let Some(value) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(Encoding::Identity);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::UnsupportedMediaType("unreadable Content-Encoding".into()))?
        .trim()
        .to_ascii_lowercase();
    match value.as_str() {
        "" | "identity" => Ok(Encoding::Identity),
        "gzip" | "x-gzip" => Ok(Encoding::Gzip),
        "zstd" => Ok(Encoding::Zstd),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "unsupported Content-Encoding {other:?}: send identity, gzip or zstd"
        ))),
    }
}

/// The media type of `Content-Type`, lower-cased and without parameters.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
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
        if declared.is_some_and(|n| n <= DRAIN_MAX) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
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
