#!/usr/bin/env bash
# Apache Kafka's own admin tools, run from the jars infra/up.sh fetched (no Kafka install needed):
#   infra/kafka.sh consumer-groups --describe --group tunix-writer   # lag per partition
#   infra/kafka.sh topics --describe --topic traces
#   infra/kafka.sh configs --describe --entity-type topics --entity-name traces
#   infra/kafka.sh get-offsets --topic traces
#   infra/kafka.sh console-consumer --topic traces --from-beginning --max-messages 5
#   infra/kafka.sh metadata-quorum describe --status
#   infra/kafka.sh cluster cluster-id
# --bootstrap-server is added from KAFKA_BROKERS (or .stack/env, or 127.0.0.1:19092) unless given.
# For a secured cluster pass --command-config client.properties (see docs/OPERATIONS.md).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { sed -n '2,12p' "$0"; exit "${1:-0}"; }
[ $# -ge 1 ] || usage 1
case "$1" in
  consumer-groups) main=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
  topics) main=org.apache.kafka.tools.TopicCommand ;;
  configs) main=org.apache.kafka.tools.ConfigCommand ;;
  get-offsets) main=org.apache.kafka.tools.GetOffsetShell ;;
  console-consumer) main=org.apache.kafka.tools.consumer.ConsoleConsumer ;;
  delete-records) main=org.apache.kafka.tools.DeleteRecordsCommand ;;
  metadata-quorum) main=org.apache.kafka.tools.MetadataQuorumCommand ;;
  cluster) main=org.apache.kafka.tools.ClusterTool ;;
  -h|--help) usage 0 ;;
  *) die "unknown tool $1 (see --help)" ;;
esac
shift

if [ -z "${KAFKA_BROKERS:-}" ] && [ -f "$REPO_ROOT/.stack/env" ]; then
  # shellcheck disable=SC1091
  source "$REPO_ROOT/.stack/env"
fi
args=("$@")
case " $* " in
  *" --bootstrap-server "*|*" --bootstrap-controller "*) ;;
  *)
    if [ "$main" = org.apache.kafka.tools.ClusterTool ]; then
      args=("${args[0]}" --bootstrap-server "${KAFKA_BROKERS:-127.0.0.1:19092}" "${args[@]:1}")
    else
      args=(--bootstrap-server "${KAFKA_BROKERS:-127.0.0.1:19092}" "${args[@]}")
    fi
    ;;
esac
ensure_kafka
kafka_tool "$main" "${args[@]}"
