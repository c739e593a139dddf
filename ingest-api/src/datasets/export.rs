//! Exports: a dataset's members streamed as JSONL (in one of the row formats) or as one Parquet
//! file, in the dataset's order with frozen scores and splits, compressed on the wire when the
//! client accepts it. Deleted traces are omitted and counted in `X-Tunix-Omitted`.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use futures::TryStreamExt;
use serde_json::value::RawValue;
use sqlx::PgConnection;
use tunix_schemas::dataset::{self, ExportTrace, Format, RowContext};
use tunix_schemas::pg_text;
use uuid::Uuid;

use super::parquet::{ParquetRows, ParquetTrace};
use super::store::{DatasetRow, DatasetState};
use crate::http::body::{accepted_encoding, Encoding};
use crate::http::db::db_error;
use crate::http::error::ApiError;
use crate::AppState;

/// Which members an export covers.
#[derive(Clone, Copy)]
pub(crate) enum SplitSel {
    All,
    Train,
    Eval,
}

impl SplitSel {
    /// The `eval` flag its members have (`None`: any).
    fn eval(self) -> Option<bool> {
        match self {
            SplitSel::All => None,
            SplitSel::Train => Some(false),
            SplitSel::Eval => Some(true),
        }
    }
}

/// What an export writes: JSONL rows of a format, or one Parquet file.
#[derive(Clone, Copy)]
pub(crate) enum ExportFormat {
    Jsonl(Format),
    Parquet,
}

pub(crate) fn export_params(raw: Option<&str>) -> Result<(ExportFormat, SplitSel), ApiError> {
    let mut format = ExportFormat::Jsonl(Format::Trace);
    let mut split = SplitSel::All;
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "format" if v == "parquet" => format = ExportFormat::Parquet,
            "format" => {
                format = ExportFormat::Jsonl(Format::parse(&v).ok_or_else(|| {
                    ApiError::InvalidParam {
                        param: "format".into(),
                        msg: "format should be trace, tunix_sft, training_example, chat or parquet"
                            .into(),
                        location: "query",
                    }
                })?)
            }
            "split" => {
                split = match v.as_ref() {
                    "all" => SplitSel::All,
                    "train" => SplitSel::Train,
                    "eval" => SplitSel::Eval,
                    _ => {
                        return Err(ApiError::InvalidParam {
                            param: "split".into(),
                            msg: "split should be train, eval or all".into(),
                            location: "query",
                        })
                    }
                }
            }
            _ => {}
        }
    }
    Ok((format, split))
}

/// Bytes of JSONL gathered before a chunk is encoded and sent.
const EXPORT_CHUNK_BYTES: usize = 64 * 1024;

/// Where an export's rows go.
enum Output {
    Jsonl {
        format: Format,
        buf: Vec<u8>,
        encoder: Encoder,
    },
    Parquet(Box<ParquetRows>),
}

/// Encodes the export stream chunk by chunk.
enum Encoder {
    Identity(Vec<u8>),
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Encoder {
    fn new(encoding: Encoding) -> std::io::Result<Encoder> {
        Ok(match encoding {
            Encoding::Identity => Encoder::Identity(Vec::new()),
            Encoding::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::fast(),
            )),
            Encoding::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(Vec::new(), 3)?),
        })
    }

    fn write(&mut self, raw: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        match self {
            Encoder::Identity(out) => {
                out.extend_from_slice(raw);
                Ok(())
            }
            Encoder::Gzip(e) => e.write_all(raw),
            Encoder::Zstd(e) => e.write_all(raw),
        }
    }

    /// The encoded bytes produced so far (only ever appended to, so taking them is safe).
    fn take(&mut self) -> Vec<u8> {
        match self {
            Encoder::Identity(out) => std::mem::take(out),
            Encoder::Gzip(e) => std::mem::take(e.get_mut()),
            Encoder::Zstd(e) => std::mem::take(e.get_mut()),
        }
    }

    fn finish(self) -> std::io::Result<Vec<u8>> {
        match self {
            Encoder::Identity(out) => Ok(out),
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

/// Streams the export of `row`: members in order, deleted traces omitted (counted in
/// `X-Tunix-Omitted`).
pub(crate) async fn export_response(
    state: Arc<AppState>,
    row: DatasetRow,
    format: ExportFormat,
    split: SplitSel,
    encoding: Encoding,
) -> Result<Response, ApiError> {
    // Parquet pages are compressed already.
    let encoding = match format {
        ExportFormat::Parquet => Encoding::Identity,
        ExportFormat::Jsonl(_) => encoding,
    };
    if !DatasetState::Ready.is(&row.state) {
        return Err(ApiError::unavailable(
            "the dataset is still being built; retry shortly",
            state.cfg.retry_after_secs,
        ));
    }
    let eval = split.eval();
    let mut conn = state
        .pool
        .acquire()
        .await
        .map_err(|e| db_error(&state, &e))?;
    let omitted = match tune_session(&mut conn).await {
        Ok(()) => count_omitted(&mut conn, row.build_id, eval).await,
        Err(e) => Err(e),
    };
    let omitted = match omitted {
        Ok(n) => n,
        Err(e) => {
            conn.close_on_drop(); // it may carry the export's settings
            return Err(db_error(&state, &e));
        }
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let build_id = row.build_id;
    tokio::spawn(async move {
        let result = stream_members(&mut conn, build_id, eval, format, encoding, &tx).await;
        // Back to the pool with the read API's settings restored. A query cut short is not
        // drained: its connection is closed, which stops the query in Postgres.
        if !matches!(result, Ok(true))
            || sqlx::query!("RESET ALL").execute(&mut *conn).await.is_err()
        {
            conn.close_on_drop();
        }
        if let Err(e) = result {
            tracing::warn!(error = %e, "export failed mid-stream");
            let _ = tx.send(Err(std::io::Error::other("export failed"))).await;
        }
    });
    let body = Body::from_stream(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    let mut resp = Response::new(body);
    export_headers(resp.headers_mut(), &row, format, encoding, omitted);
    Ok(resp)
}

/// Session settings for the export's statements. Members walk the (build_id, position) key in
/// order and probe `traces` by id, so the first row comes at once: a hash join would read every
/// trace first, a sort every member. No read limit: an export may take long.
async fn tune_session(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query!("SET enable_hashjoin = off")
        .execute(&mut *conn)
        .await?;
    sqlx::query!("SET enable_mergejoin = off")
        .execute(&mut *conn)
        .await?;
    sqlx::query!("SET enable_sort = off")
        .execute(&mut *conn)
        .await?;
    sqlx::query!("SET enable_seqscan = off")
        .execute(&mut *conn)
        .await?;
    sqlx::query!("SET max_parallel_workers_per_gather = 0")
        .execute(&mut *conn)
        .await?;
    sqlx::query!("SET statement_timeout = 0")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Members of the build whose trace was deleted. Starts from the (few) deleted ids, not from
/// every member (`OFFSET 0` keeps the planner from turning that around).
async fn count_omitted(
    conn: &mut PgConnection,
    build_id: Uuid,
    eval: Option<bool>,
) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "omitted!" FROM trace_deletions d
           CROSS JOIN LATERAL (SELECT 1 FROM dataset_members m
                               WHERE m.trace_id = d.id AND m.build_id = $1
                                 AND ($2::bool IS NULL OR m.eval = $2) OFFSET 0) x"#,
        build_id,
        eval
    )
    .fetch_one(conn)
    .await
}

/// Reads the members in order and sends the encoded chunks to `tx`. Ok(true): streamed to the
/// end; Ok(false): the client went away.
async fn stream_members(
    conn: &mut PgConnection,
    build_id: Uuid,
    eval: Option<bool>,
    format: ExportFormat,
    encoding: Encoding,
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Result<bool, sqlx::Error> {
    let mut rows = sqlx::query!(
        r#"SELECT m.trace_id, m.eval, m.scores::text AS "scores!", t.created_at,
                  t.trace_version, t.payload::text AS "payload!"
           FROM dataset_members m JOIN traces t ON t.id = m.trace_id
           WHERE m.build_id = $1 AND ($2::bool IS NULL OR m.eval = $2)
             AND NOT EXISTS (SELECT 1 FROM trace_deletions d WHERE d.id = m.trace_id)
           ORDER BY m.position"#,
        build_id,
        eval
    )
    .fetch(conn);
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "{what}; export stops");
        sqlx::Error::Protocol(format!("{what}: {e}"))
    };
    let mut out = match format {
        ExportFormat::Jsonl(f) => Output::Jsonl {
            format: f,
            buf: Vec::with_capacity(EXPORT_CHUNK_BYTES + 4096),
            encoder: Encoder::new(encoding).map_err(|e| failed("encoder", &e))?,
        },
        ExportFormat::Parquet => Output::Parquet(Box::default()),
    };
    while let Some(r) = rows.try_next().await? {
        let version = pg_text::decode(&r.trace_version);
        let split = if r.eval { "eval" } else { "train" };
        let ready = match &mut out {
            Output::Jsonl {
                format,
                buf,
                encoder,
            } => {
                let trace: ExportTrace = serde_json::from_str(&r.payload)
                    .map_err(|e| failed("a stored payload does not parse", &e))?;
                let scores =
                    RawValue::from_string(r.scores).map_err(|e| failed("frozen scores", &e))?;
                let cx = RowContext {
                    id: r.trace_id,
                    created_at: r.created_at,
                    trace_version: &version,
                    scores: &scores,
                    split,
                };
                buf.extend_from_slice(dataset::export_row(*format, &cx, &trace).as_bytes());
                buf.push(b'\n');
                if buf.len() >= EXPORT_CHUNK_BYTES {
                    encoder.write(buf).map_err(|e| failed("encoder", &e))?;
                    buf.clear();
                    encoder.take()
                } else {
                    Vec::new()
                }
            }
            Output::Parquet(file) => {
                let trace: ParquetTrace = serde_json::from_str(&r.payload)
                    .map_err(|e| failed("a stored payload does not parse", &e))?;
                file.push(
                    &r.trace_id,
                    &r.created_at,
                    &version,
                    &trace,
                    &r.scores,
                    split,
                )
                .map_err(|e| failed("parquet", &e))?;
                file.take()
            }
        };
        if !ready.is_empty() && tx.send(Ok(Bytes::from(ready))).await.is_err() {
            return Ok(false); // the client went away: stop reading
        }
    }
    let last = match out {
        Output::Jsonl {
            buf, mut encoder, ..
        } => {
            encoder.write(&buf).map_err(|e| failed("encoder", &e))?;
            encoder.finish().map_err(|e| failed("encoder", &e))?
        }
        Output::Parquet(file) => file.finish().map_err(|e| failed("parquet", &e))?,
    };
    if !last.is_empty() {
        let _ = tx.send(Ok(Bytes::from(last))).await;
    }
    Ok(true)
}

/// The export's content type, coding, omitted count and file name.
fn export_headers(
    h: &mut HeaderMap,
    row: &DatasetRow,
    format: ExportFormat,
    encoding: Encoding,
    omitted: i64,
) {
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(match format {
            ExportFormat::Jsonl(_) => "application/x-ndjson",
            ExportFormat::Parquet => "application/vnd.apache.parquet",
        }),
    );
    h.insert("x-tunix-omitted", HeaderValue::from(omitted));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    match encoding {
        Encoding::Identity => {}
        Encoding::Gzip => {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        Encoding::Zstd => {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("zstd"));
        }
    }
    let file = match format {
        ExportFormat::Jsonl(f) => format!("{}.jsonl", f.as_str()),
        ExportFormat::Parquet => "parquet".to_owned(),
    };
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}-{}.{file}\"",
        row.name, row.version
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
}

/// `GET /api/datasets/{name}/{version}/export?format=&split=`: the members as JSONL, streamed.
#[utoipa::path(
    get,
    path = "/api/datasets/{name}/{version}/export",
    tag = "datasets",
    summary = "Export a dataset as JSONL or Parquet",
    description = "format: trace (default), tunix_sft, training_example, chat (JSONL) or parquet (one file, typed columns); split: all (default), train or eval. Rows in the dataset's order, each with the member's frozen scores and split. Members whose trace was deleted are omitted; X-Tunix-Omitted says how many. Accept-Encoding: zstd or gzip compresses the stream.",
    params(("name" = String, Path), ("version" = String, Path),
           ("format" = Option<String>, Query), ("split" = Option<String>, Query)),
    responses(
        (status = 200, content_type = "application/x-ndjson"),
        (status = 404, body = crate::http::openapi::ErrorBody),
        (status = 422, body = crate::http::openapi::ValidationErrorBody),
        crate::http::openapi::KeyErrors,
        crate::http::openapi::RetryLater,
    )
)]
pub async fn export(
    State(state): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (format, split) = export_params(raw.as_deref())?;
    let row = super::existing(&state, &name, &version).await?;
    export_response(state, row, format, split, accepted_encoding(&headers)).await
}
