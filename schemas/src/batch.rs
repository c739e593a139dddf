//! Batch bodies: a JSON array or NDJSON of traces, validated all-or-nothing.

use serde_json::value::RawValue;

use crate::error::{ErrorKind, Loc, ValidationErrors};
use crate::trace::{first_byte, json_text, parse_raw, Trace};

/// Most traces accepted in one batch request.
pub const BATCH_MAX_ITEMS: usize = 1_000;

/// How a batch body is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchFormat {
    /// `[trace, trace, ...]` (`application/json`).
    JsonArray,
    /// One trace per line (`application/x-ndjson`); blank lines are skipped.
    Ndjson,
}

/// Why a batch was refused. Nothing from a refused batch is appended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// No items: 400.
    #[error("batch must contain at least one trace")]
    Empty,
    /// More than [`BATCH_MAX_ITEMS`]: 413.
    #[error("batch contains {got} traces; the maximum is {max} per request")]
    TooMany {
        /// Items found.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// One item is larger than the single-trace size limit: 413.
    #[error("batch item {index} is {size} bytes; each trace is limited to {max} bytes")]
    ItemTooLarge {
        /// 0-based item index.
        index: usize,
        /// Its size in bytes.
        size: usize,
        /// The per-trace limit (`TRACE_MAX_BYTES`).
        max: usize,
    },
    /// Syntax or rule violations, every one with its path: 422.
    #[error("{0}")]
    Invalid(ValidationErrors),
}

/// Parses and validates a batch. `max_item_bytes` is the single-trace limit, applied to each
/// item's JSON text so that a batch can never carry a trace a single POST could not.
pub fn parse_batch(
    body: &[u8],
    format: BatchFormat,
    max_item_bytes: usize,
) -> Result<Vec<Trace>, BatchError> {
    parse_batch_redacted(
        body,
        format,
        max_item_bytes,
        &mut crate::redact::NoRedaction,
    )
}

/// Like [`parse_batch`], with `redact` applied to every item before it is validated.
pub fn parse_batch_redacted(
    body: &[u8],
    format: BatchFormat,
    max_item_bytes: usize,
    redact: &mut dyn crate::redact::Redact,
) -> Result<Vec<Trace>, BatchError> {
    let text = json_text(body).map_err(BatchError::Invalid)?;
    let items: Vec<&RawValue> = match format {
        BatchFormat::JsonArray => {
            let root = parse_raw(text).map_err(BatchError::Invalid)?;
            if first_byte(root) != b'[' {
                let mut errs = ValidationErrors::default();
                errs.push(
                    Loc::body(),
                    ErrorKind::ListType,
                    "Input should be a valid list of traces",
                );
                return Err(BatchError::Invalid(errs));
            }
            serde_json::from_str(root.get()).map_err(|e| {
                let mut errs = ValidationErrors::default();
                errs.push(
                    Loc::body(),
                    ErrorKind::JsonInvalid,
                    format!("JSON decode error: {e}"),
                );
                BatchError::Invalid(errs)
            })?
        }
        BatchFormat::Ndjson => {
            let mut items = Vec::new();
            let mut errs = ValidationErrors::default();
            for (line_no, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
                if items.len() + errs.0.len() > BATCH_MAX_ITEMS {
                    // Enough to know the batch is too large; do not parse the rest.
                    items.push(RawValue::NULL);
                    continue;
                }
                match serde_json::from_str::<&RawValue>(line) {
                    Ok(raw) => items.push(raw),
                    Err(e) => errs.push(
                        Loc::body().child(line_no),
                        ErrorKind::JsonInvalid,
                        format!("JSON decode error: {e}"),
                    ),
                }
            }
            if !errs.is_empty() {
                return Err(BatchError::Invalid(errs));
            }
            items
        }
    };
    if items.is_empty() {
        return Err(BatchError::Empty);
    }
    if items.len() > BATCH_MAX_ITEMS {
        return Err(BatchError::TooMany {
            got: items.len(),
            max: BATCH_MAX_ITEMS,
        });
    }
    if let Some((index, item)) = items
        .iter()
        .enumerate()
        .find(|(_, item)| item.get().len() > max_item_bytes)
    {
        return Err(BatchError::ItemTooLarge {
            index,
            size: item.get().len(),
            max: max_item_bytes,
        });
    }
    let mut traces = Vec::with_capacity(items.len());
    let mut errs = ValidationErrors::default();
    for (n, item) in items.iter().enumerate() {
        match Trace::from_raw_redacted(item, &Loc::body().child(n), redact) {
            Ok(t) => traces.push(t),
            Err(e) => errs.extend(e),
        }
    }
    if errs.is_empty() {
        Ok(traces)
    } else {
        Err(BatchError::Invalid(errs))
    }
}
