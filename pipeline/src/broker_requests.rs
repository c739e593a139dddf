//! How many requests a Kafka client sends to the brokers, by kind, from librdkafka's statistics
//! (`statistics.interval.ms`). Fewer, fuller requests is most of what a broker's CPU per record
//! comes down to, so every client exports the count (`tunix-bench cost` reads it).

use std::collections::HashMap;
use std::sync::Mutex;

use metrics::counter;
use rdkafka::statistics::Statistics;

/// The request kinds counted apart; every other request type is `other`.
const KINDS: [(&str, &str); 2] = [("Produce", "produce"), ("Fetch", "fetch")];

/// A `<name>{request}` counter fed from librdkafka's cumulative per-broker request counts.
pub struct BrokerRequests {
    name: &'static str,
    /// The last cumulative count per (client handle, broker, request type).
    last: Mutex<HashMap<(String, String, String), i64>>,
}

impl BrokerRequests {
    /// Registers `name` with zeros for `produce`, `fetch` and `other`. Create it once per
    /// process and feed it every client's statistics: replaced clients keep adding to it.
    pub fn new(name: &'static str) -> BrokerRequests {
        for kind in ["produce", "fetch", "other"] {
            counter!(name, "request" => kind).absolute(0);
        }
        BrokerRequests {
            name,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// Adds what `stats` counts beyond the previous report of the same client.
    pub fn observe(&self, stats: &Statistics) {
        let mut added = [0u64; 3];
        let mut last = self.last.lock().expect("broker request counts");
        for (broker, b) in &stats.brokers {
            for (request, &n) in &b.req {
                let key = (stats.name.clone(), broker.clone(), request.clone());
                let before = last.insert(key, n).unwrap_or(0);
                let delta = if n >= before { n - before } else { n };
                let slot = KINDS.iter().position(|(k, _)| *k == request).unwrap_or(2);
                added[slot] += delta.max(0) as u64;
            }
        }
        drop(last);
        for (kind, n) in ["produce", "fetch", "other"].into_iter().zip(added) {
            if n > 0 {
                counter!(self.name, "request" => kind).increment(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(name: &str, produce: i64, fetch: i64, metadata: i64) -> Statistics {
        let broker = r#"{"name": "b/1", "nodeid": 1, "nodename": "b", "source": "configured",
            "state": "UP", "stateage": 0, "outbuf_cnt": 0, "outbuf_msg_cnt": 0,
            "waitresp_cnt": 0, "waitresp_msg_cnt": 0, "tx": 0, "txbytes": 0, "txerrs": 0,
            "txretries": 0, "txidle": 0, "req_timeouts": 0, "rx": 0, "rxbytes": 0,
            "rxerrs": 0, "rxcorriderrs": 0, "rxpartial": 0, "rxidle": 0, "zbuf_grow": 0,
            "buf_grow": 0, "wakeups": 0, "connects": 0, "disconnects": 0, "toppars": {},
            "req": REQ}"#
            .replace(
                "REQ",
                &format!(r#"{{"Produce": {produce}, "Fetch": {fetch}, "Metadata": {metadata}}}"#),
            );
        let json = r#"{"name": "NAME", "client_id": "c", "type": "producer", "ts": 0, "time": 0,
            "age": 0, "replyq": 0, "msg_cnt": 0, "msg_size": 0, "msg_max": 0, "msg_size_max": 0,
            "tx": 0, "tx_bytes": 0, "rx": 0, "rx_bytes": 0, "txmsgs": 0, "txmsg_bytes": 0,
            "rxmsgs": 0, "rxmsg_bytes": 0, "simple_cnt": 0, "metadata_cache_cnt": 0,
            "brokers": {"b/1": BROKER}, "topics": {}}"#
            .replace("NAME", name)
            .replace("BROKER", &broker);
        serde_json::from_str(&json).expect("statistics")
    }

    #[test]
    fn counts_deltas_per_client_and_survives_a_replaced_client() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let r = BrokerRequests::new("t_requests_total");
            r.observe(&stats("p-1", 10, 0, 2));
            r.observe(&stats("p-1", 25, 0, 3));
            // A replaced client starts from zero under a new handle name.
            r.observe(&stats("p-2", 4, 7, 1));
        });
        let text = handle.render();
        let value = |kind: &str| {
            text.lines()
                .find(|l| l.starts_with(&format!("t_requests_total{{request=\"{kind}\"}}")))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
        };
        assert_eq!(value("produce"), Some(29.0), "{text}");
        assert_eq!(value("fetch"), Some(7.0), "{text}");
        assert_eq!(value("other"), Some(4.0), "{text}");
    }
}
