//! The pgbench scripts of the speed suite: the primary-key select of the GET's row, the first
//! page, and each filtered page's statement, built by `ListQuery` and checked against the API.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use sqlx::{PgPool, Row};
use tunix_ingest_api::traces::filter::ListQuery;
use tunix_ingest_api::traces::read::WINDOW_ROWS;
use uuid::Uuid;

use super::tools::fetch;
use super::FILTERS;

/// A pgbench script and the values of its variables.
pub(super) struct Script {
    pub(super) path: PathBuf,
    pub(super) vars: Vec<(String, String)>,
}

/// The pgbench scripts: the primary-key select of the GET's row, the first page, and each
/// filtered page's statements.
pub(super) struct Scripts {
    pub(super) pk: PathBuf,
    pub(super) vars: Vec<(String, String)>,
    pub(super) page: PathBuf,
    pub(super) filtered: Vec<Script>,
}

impl Scripts {
    pub(super) async fn write(
        dir: &Path,
        pool: &PgPool,
        http: &str,
        id: Uuid,
    ) -> anyhow::Result<Scripts> {
        let pk = dir.join("pk.sql");
        std::fs::write(
            &pk,
            "SELECT id, created_at, trace_version, payload FROM traces WHERE id = :id::uuid;\n",
        )?;
        let page = dir.join("page.sql");
        let q = ListQuery::parse(Some("limit=20")).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        std::fs::write(&page, format!("{};\n", q.sql().sql()))?;
        let mut filtered = Vec::new();
        for (n, (_, filter)) in FILTERS.iter().enumerate() {
            let raw = format!("limit=20&{filter}");
            let q = ListQuery::parse(Some(&raw)).map_err(|e| anyhow::anyhow!("{e:?}"))?;
            filtered.push(
                filtered_script(dir, n, &q, pool, &format!("{http}/api/traces?{raw}")).await?,
            );
        }
        Ok(Scripts {
            pk,
            vars: vec![("id".into(), id.to_string())],
            page,
            filtered,
        })
    }
}

/// The statement of a selective page whose window holds the page (the dense case the suite's
/// filters are): the window statement alone, as the API runs it. The values are rebuilt here from the parsed
/// query in the builder's order, then checked: the window statement run with them must list the
/// API's page, or the suite stops.
async fn filtered_script(
    dir: &Path,
    n: usize,
    q: &ListQuery,
    pool: &PgPool,
    url: &str,
) -> anyhow::Result<Script> {
    let window = q.window_sql(WINDOW_ROWS);
    let mut window_values = vec![WINDOW_ROWS.to_string()];
    for m in &q.meta {
        window_values.push(text_array(&m.candidates));
    }
    if let Some((_, terms)) = &q.q {
        window_values.push(tunix_schemas::search::tsquery_text(terms));
    }
    window_values.push((q.limit + 1).to_string());
    // Check the values: the window statement with them lists the API's page.
    let mut check = sqlx::query(window.sql());
    for (i, v) in window_values.iter().enumerate() {
        check = if i == 0 || i == window_values.len() - 1 {
            check.bind(v.parse::<i64>()?)
        } else {
            check.bind(v.clone())
        };
    }
    let rows = check
        .fetch_all(pool)
        .await
        .context("the window statement")?;
    let ours: Vec<Uuid> = rows.iter().map(|r| r.get::<Uuid, _>(0)).collect();
    let page: serde_json::Value = serde_json::from_slice(&fetch(url).await?)?;
    let api: Vec<Uuid> = page["data"]
        .as_array()
        .context("a page")?
        .iter()
        .filter_map(|r| r["id"].as_str().and_then(|s| s.parse().ok()))
        .collect();
    if ours.len() <= q.limit as usize || ours[..api.len()] != api[..] {
        bail!("{url}: the anchor's statements do not list the API's page (or the filter is too sparse for the window); not measuring a different query");
    }
    let mut vars = Vec::new();
    let mut text = String::new();
    let mut sql = window.sql().to_owned();
    for (i, v) in window_values.iter().enumerate().rev() {
        let var = format!("w{}", i + 1);
        sql = sql.replace(&format!("${}", i + 1), &format!(":{var}"));
        vars.push((var, v.clone()));
    }
    text.push_str(&sql);
    text.push_str(";\n");
    let path = dir.join(format!("filtered{n}.sql"));
    std::fs::write(&path, text)?;
    Ok(Script { path, vars })
}

/// A Postgres array literal of text values.
fn text_array(values: &[String]) -> String {
    let quoted: Vec<String> = values
        .iter()
        .map(|v| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", quoted.join(","))
}
