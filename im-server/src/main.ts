// Start-up: read the config, start the node, shut down cleanly on SIGTERM/SIGINT.
import { ConfigError, loadConfig } from './config.js';
import { startServer } from './server.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.argv.slice(2));
  } catch (e) {
    if (e instanceof ConfigError) { console.error(e.message); process.exit(e.message.startsWith('pi-im-server:') ? 0 : 2); }
    throw e;
  }
  const server = await startServer(config);
  // Last line of defence: log and keep serving the other connections.
  process.on('uncaughtException', (err) => server.log.error({ err: err.stack }, 'uncaught exception'));
  process.on('unhandledRejection', (err) => server.log.error({ err: String((err as Error)?.stack ?? err) }, 'unhandled rejection'));
  const stop = (signal: string): void => {
    server.log.info({ signal }, 'shutting down');
    server.stop().then(() => process.exit(0), (err: Error) => { server.log.error({ err: err.message }, 'shutdown failed'); process.exit(1); });
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

main().catch((err: Error) => {
  console.error(`pi-im-server failed to start: ${err.message}`);
  process.exit(1);
});
