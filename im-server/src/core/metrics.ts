// Prometheus metrics (prom-client), one registry per server instance.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'pi_im_' });
  const m = {
    registry,
    connections: new Gauge({ name: 'pi_im_connections', help: 'Open client connections', labelNames: ['transport'] as const, registers: [registry] }),
    sessions: new Gauge({ name: 'pi_im_sessions', help: 'Bound client sessions', registers: [registry] }),
    stanzasIn: new Counter({ name: 'pi_im_stanzas_in_total', help: 'Stanzas received from clients', registers: [registry] }),
    stanzasOut: new Counter({ name: 'pi_im_stanzas_out_total', help: 'Stanzas sent to clients', registers: [registry] }),
    authFailures: new Counter({ name: 'pi_im_auth_failures_total', help: 'Failed authentication attempts', registers: [registry] }),
    streamErrors: new Counter({ name: 'pi_im_stream_errors_total', help: 'Streams closed with an error', labelNames: ['condition'] as const, registers: [registry] }),
    deliveryLatency: new Histogram({
      name: 'pi_im_delivery_latency_seconds', help: 'From a message read off a socket to written to its recipient',
      buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1], registers: [registry],
    }),
    commitLatency: new Histogram({
      name: 'pi_im_storage_commit_seconds', help: 'Duration of one group-commit transaction (includes its fsync)',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1], registers: [registry],
    }),
    fsyncs: new Counter({ name: 'pi_im_storage_fsyncs_total', help: 'Committed storage transactions (one WAL fsync each with synchronous=FULL)', registers: [registry] }),
    commitFailures: new Counter({ name: 'pi_im_storage_commit_failures_total', help: 'Group commits that failed (disk full, I/O error): none of their writes was acknowledged', registers: [registry] }),
    batchedWrites: new Counter({ name: 'pi_im_storage_writes_total', help: 'Writes committed (many per transaction)', registers: [registry] }),
  };
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;
