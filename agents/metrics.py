"""The agent's Prometheus metrics (prefix logtide_agent_; labels of bounded cardinality).

The per-file checkpoint lag gauge is labelled by namespace/pod/container/<file name> for pod logs (never
the pod uid that kubelet puts in the path) or by the path of a plain file; its series is removed when
the file is finished, so its cardinality is the number of files currently tailed.
"""

from prometheus_client import Counter, Gauge

LINES_READ = Counter("logtide_agent_lines_read_total", "Complete lines read from log files", ["format"])
BYTES_READ = Counter("logtide_agent_bytes_read_total", "Bytes read from log files")
RECORDS_SENT = Counter("logtide_agent_records_sent_total", "Records handed to the Kafka producer")
RECORDS_PRODUCED = Counter("logtide_agent_records_produced_total", "Records acknowledged by Kafka")
PARTIAL_MERGES = Counter("logtide_agent_partial_merges_total", "Lines reassembled from runtime-split pieces")
MULTILINE_MERGES = Counter("logtide_agent_multiline_merges_total", "Records merged from several lines")
ROTATIONS = Counter("logtide_agent_rotations_total", "Rotations seen", ["kind"])  # rename, truncate, delete
FILES_FINISHED = Counter("logtide_agent_files_finished_total", "Rotated or deleted files read to their end")
DROPPED = Counter("logtide_agent_dropped_records_total", "Records not sent", ["reason"])
FILES_FAILED = Counter(
    "logtide_agent_files_failed_total", "Files left at their checkpoint after an unexpected error in their processing"
)
BAD_INPUT = Counter("logtide_agent_bad_input_total", "Bad input handled without stopping", ["kind"])
QUEUE_DEPTH = Gauge("logtide_agent_queue_depth", "Records sent and not yet acknowledged by Kafka")
QUEUE_BYTES = Gauge("logtide_agent_queue_bytes", "Bytes of records sent and not yet acknowledged")
BACKPRESSURE = Counter("logtide_agent_backpressure_seconds_total", "Seconds reading was paused by a full queue")
FILES_TAILED = Gauge("logtide_agent_files_tailed", "Files open for reading")
GLOBS_UNMATCHED = Gauge("logtide_agent_include_globs_unmatched", "Include globs that match no file at the last scan")
CHECKPOINT_LAG = Gauge("logtide_agent_checkpoint_lag_bytes", "Bytes of a file read but not yet checkpointed", ["path"])
CHECKPOINT_WRITES = Counter("logtide_agent_checkpoint_writes_total", "Checkpoint transactions written")
CHECKPOINT_ERRORS = Counter("logtide_agent_checkpoint_errors_total", "Checkpoint writes that failed (disk full, I/O)")
PRODUCE_RETRIES = Counter("logtide_agent_produce_retries_total", "Records sent again after Kafka refused them")
KUBE_API_ERRORS = Counter("logtide_agent_kube_api_errors_total", "Failed list/watch calls to the Kubernetes API")
KUBE_EVENTS = Counter("logtide_agent_kube_watch_events_total", "Watch events received", ["kind", "type"])
POD_CACHE = Gauge("logtide_agent_pod_cache_size", "Pods in the metadata cache (deleted ones kept a while)")
KUBE_CONNECTED = Gauge("logtide_agent_kube_api_connected", "1 when the pod list+watch is in sync")
