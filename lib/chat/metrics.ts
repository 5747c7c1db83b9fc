/** Values `/metrics` reports; gathered by the app from the server and the store. */
export interface MetricValues {
  connections: number;
  waitingPolls: number;
  sessions: number;
  rooms: number;
  events: number;
  delivered: number;
  /** Responses by status class: index 1 = 1xx … 5 = 5xx. */
  responses: readonly number[];
  refusedConnections: number;
  /** Connections closed because their output made no progress within --write-timeout. */
  writeTimeouts: number;
  /** TLS handshakes that failed or did not finish within --header-timeout. */
  tlsHandshakeFailures: number;
  /** Store calls that failed or stalled since start. */
  storeErrors: number;
  /** 1 while the store works, else 0. */
  storeHealthy: number;
}

const GAUGES = [
  ["parley_connections", "Open client connections.", "connections"],
  ["parley_waiting_polls", "Long polls waiting for events.", "waitingPolls"],
  ["parley_sessions", "Live sessions.", "sessions"],
  ["parley_rooms", "Rooms.", "rooms"],
  ["parley_store_healthy", "1 while the store works, 0 while it fails or stalls.", "storeHealthy"],
] as const;

/** Renders the Prometheus text exposition format (version 0.0.4). */
export function renderMetrics(v: MetricValues): string {
  const lines: string[] = [];
  for (const [name, help, key] of GAUGES) {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name} ${v[key]}`);
  }
  lines.push(
    "# HELP parley_events_total Events stored since start.",
    "# TYPE parley_events_total counter",
    `parley_events_total ${v.events}`,
    "# HELP parley_events_delivered_total Events written in long-poll answers since start.",
    "# TYPE parley_events_delivered_total counter",
    `parley_events_delivered_total ${v.delivered}`,
    "# HELP parley_connections_refused_total Connections refused over a connection limit.",
    "# TYPE parley_connections_refused_total counter",
    `parley_connections_refused_total ${v.refusedConnections}`,
    "# HELP parley_write_timeouts_total Connections closed for reading none of their answers in time.",
    "# TYPE parley_write_timeouts_total counter",
    `parley_write_timeouts_total ${v.writeTimeouts}`,
    "# HELP parley_tls_handshake_failures_total TLS handshakes that failed or timed out.",
    "# TYPE parley_tls_handshake_failures_total counter",
    `parley_tls_handshake_failures_total ${v.tlsHandshakeFailures}`,
    "# HELP parley_store_errors_total Store calls that failed or did not finish in time.",
    "# TYPE parley_store_errors_total counter",
    `parley_store_errors_total ${v.storeErrors}`,
    "# HELP parley_http_requests_total HTTP responses written, by status class.",
    "# TYPE parley_http_requests_total counter",
  );
  for (const cls of [2, 3, 4, 5]) {
    lines.push(`parley_http_requests_total{class="${cls}xx"} ${v.responses[cls] ?? 0}`);
  }
  return lines.join("\n") + "\n";
}
